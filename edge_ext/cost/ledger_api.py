"""What a spend ledger keeps and promises, and the in-process ledger.

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

__all__ = ["BudgetLedger", "Hold", "LedgerUnavailable", "MemoryLedger", "Totals", "from_micros", "to_micros"]

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
    """Where spend, holds and token windows are kept (memory for tests, disk, Redis)."""

    async def spent(self, scope_id: str, period_key: str) -> Decimal: ...

    async def add(self, scope_id: str, period_key: str, usd: Decimal) -> Decimal:
        """Add settled spend and return the new total of that period."""
        ...

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

    async def count(self, key: str) -> int: ...


def _amount(usd: Decimal) -> Decimal:
    if isinstance(usd, bool) or not isinstance(usd, (Decimal, int, str)):
        raise TypeError(f"usd must be a Decimal, got {usd!r}")
    amount = Decimal(usd)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"usd must be a finite amount >= 0, got {usd!r}")
    return amount


class MemoryLedger:
    """A process-local ledger: for tests and single-process use (not shared across workers)."""

    def __init__(self) -> None:
        self._spend: dict[tuple[str, str], int] = {}
        self._estimated: dict[tuple[str, str], int] = {}
        self._holds: dict[tuple[str, str], dict[str, tuple[int, float, bool]]] = {}
        self._counts: dict[str, int] = {}

    async def spent(self, scope_id: str, period_key: str) -> Decimal:
        return from_micros(self._spend.get((scope_id, period_key), 0))

    async def add(self, scope_id: str, period_key: str, usd: Decimal) -> Decimal:
        key = (scope_id, period_key)
        self._spend[key] = self._spend.get(key, 0) + to_micros(_amount(usd))
        return from_micros(self._spend[key])

    def _held(self, key: tuple[str, str], now: float) -> int:
        holds = self._holds.get(key, {})
        for hold_id in [h for h, (_, expires, _) in holds.items() if expires <= now]:
            micros, _, due = holds.pop(hold_id)
            if due:
                self._spend[key] = self._spend.get(key, 0) + micros
                self._estimated[key] = self._estimated.get(key, 0) + micros
        return sum(micros for micros, _, _ in holds.values())

    async def totals(self, scope_id: str, period_key: str, now: float) -> Totals:
        key = (scope_id, period_key)
        held = self._held(key, now)  # first: expired due holds become spend
        return Totals(from_micros(self._spend.get(key, 0)), from_micros(held), from_micros(self._estimated.get(key, 0)))

    async def reserve(self, hold: Hold, limit: Decimal, now: float) -> tuple[bool, Totals]:
        before = await self.totals(hold.scope_id, hold.period_key, now)
        if to_micros(before.spent) + to_micros(before.held) >= to_micros(limit):
            return False, before
        self._holds.setdefault((hold.scope_id, hold.period_key), {})[hold.id] = (hold.micros, hold.expires, hold.due)
        return True, before

    async def settle(self, hold: Hold, usd: Decimal, estimated: bool) -> None:
        key = (hold.scope_id, hold.period_key)
        held = self._holds.get(key, {}).pop(hold.id, None)
        micros = to_micros(_amount(usd))
        if hold.due and held is None:
            return
        self._spend[key] = self._spend.get(key, 0) + micros
        if estimated:
            self._estimated[key] = self._estimated.get(key, 0) + micros

    async def take(self, key: str, n: int, limit: int, ttl_s: float) -> tuple[bool, int]:
        used = self._counts.get(key, 0)
        if used >= limit:
            return False, used
        self._counts[key] = used + n
        return True, used

    async def incr(self, key: str, n: int, ttl_s: float) -> int:
        self._counts[key] = max(0, self._counts.get(key, 0) + n)
        return self._counts[key]

    async def count(self, key: str) -> int:
        return self._counts.get(key, 0)
