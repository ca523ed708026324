"""What a spend ledger keeps and promises (edge_ext.cost.ledgers and ledger_redis keep it).

Per subject (``tenant:acme``) and period (``2026-11-27``) a ledger keeps:

* **spend**: what answers cost, settled when each request ends;
* **holds**: what requests in flight reserved when they were admitted, each with an id and an
  expiry (a worker that dies mid-request holds nothing for ever). A *due* hold is charged, as
  estimated spend, when it expires unsettled: its request was sent to a provider and its outcome
  may have been lost (edge_ext.policy.outcome), so no answer is left unaccounted; settling a due
  hold that already expired adds nothing, so each is counted exactly once;
* **estimated**: the part of spend charged from an estimate (an answer cut off before the
  provider reported its usage).

and token counters for the tokens-per-minute windows.

Admission is one atomic step in every ledger: a request is admitted while spend plus holds is
below the limit, and its hold is added in the same step, so concurrent requests (other workers,
other replicas) see each other's reservations. Amounts are integer micro-dollars in every store,
so increments are integer operations; each amount is rounded up to the next micro-dollar, which
never under-counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol, runtime_checkable

__all__ = ["BudgetLedger", "Hold", "LedgerUnavailable", "Totals", "from_micros", "to_micros"]

_MICRO = Decimal("0.000001")


def to_micros(usd: Decimal) -> int:
    return int((Decimal(usd) / _MICRO).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) * _MICRO


class LedgerUnavailable(Exception):
    """The shared store cannot be reached and budgets fail closed."""


@dataclass(frozen=True, slots=True)
class Totals:
    spent: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    estimated: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Hold:
    """One request's reservation against one budget, until ``expires`` (epoch seconds)."""

    scope_id: str
    period_key: str
    id: str
    usd: Decimal
    expires: float
    # Charged at expiry when unsettled (see the module docstring); else it frees itself.
    due: bool = False

    @property
    def micros(self) -> int:
        return to_micros(self.usd)


@runtime_checkable
class BudgetLedger(Protocol):
    """Where spend, holds and token windows are kept (the instance's disk, or Redis)."""

    async def totals(self, scope_id: str, period_key: str, now: float) -> Totals: ...

    async def reserve(self, hold: Hold, limit: Decimal, now: float) -> tuple[bool, Totals]:
        """Atomically: admit while spend + holds < ``limit`` and then add ``hold``.
        Returns whether it was admitted and the totals seen before it."""
        ...

    async def settle(self, hold: Hold, usd: Decimal, estimated: bool) -> None:
        """Drop ``hold`` (if it has not expired) and add ``usd`` of spend, in one step; for a due
        hold, only while it is still held (an expired one was charged already)."""
        ...

    async def take(self, key: str, n: int, limit: int, ttl_s: float) -> tuple[bool, int]:
        """Atomically: if counter ``key`` is below ``limit``, add ``n``. Returns (admitted, count before)."""
        ...

    async def incr(self, key: str, n: int, ttl_s: float) -> int:
        """Add ``n`` (negative: give back part of a reservation) and return the new count."""
        ...
