"""Spend budgets per API key or tenant, and tokens-per-minute limits: the pure part.

A budget is a USD limit over a period. Spend is kept in a :class:`BudgetLedger` under
``(scope_id, period_key)``; the period key changes at each UTC day or month boundary, so a new
period starts from zero without anything being reset (old keys can simply expire in Redis).
Key-scoped budgets are identified by a key id or hash chosen by the caller, never the key itself:
the id appears in ledger keys and in the messages clients see.

A request is admitted while what has been spent plus what requests in flight hold (their
reservations, edge_ext.cost.reserve) is below the limit; its own reservation is added in the same
atomic step (edge_ext.cost.ledger_api), and replaced by its real cost when it ends. So the last
admitted request may overshoot the limit, by at most its own reservation as long as reservations
are upper estimates; a limit of 0 refuses everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from edge_ext.cost.ledger_api import BudgetLedger

__all__ = [
    "BudgetLedger",
    "BudgetSpec",
    "BudgetVerdict",
    "Period",
    "Scope",
    "check",
    "format_usd",
    "period_key",
    "resets_at",
]

Scope = Literal["key", "tenant"]
Period = Literal["daily", "monthly", "total"]
_SCOPES = ("key", "tenant")
_PERIODS = ("daily", "monthly", "total")


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    # repr() of a float is its shortest round-tripping decimal: 10.1 stays 10.1.
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite() or result < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    scope: Scope
    id: str
    period: Period
    limit_usd: Decimal
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {self.scope!r}")
        if self.period not in _PERIODS:
            raise ValueError(f"period must be one of {_PERIODS}, got {self.period!r}")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("id must be a non-empty string")
        object.__setattr__(self, "limit_usd", _to_decimal(self.limit_usd, "limit_usd"))
        tpm = self.tokens_per_minute
        if tpm is not None and (isinstance(tpm, bool) or not isinstance(tpm, int) or tpm <= 0):
            raise ValueError(f"tokens_per_minute must be a positive integer or None, got {tpm!r}")

    @property
    def scope_id(self) -> str:
        """The ledger key of this budget's subject, e.g. ``tenant:acme``."""
        return f"{self.scope}:{self.id}"

    def describe(self) -> str:
        return f"{self.period} budget of {self.scope} {self.id!r}"


def _utc(now_epoch: float) -> datetime:
    return datetime.fromtimestamp(now_epoch, tz=UTC)


def period_key(period: Period, now_epoch: float) -> str:
    """The counter key of the period containing ``now_epoch``: ``2026-11-27``, ``2026-11``, ``total``."""
    if period == "total":
        return "total"
    if period == "daily":
        return _utc(now_epoch).strftime("%Y-%m-%d")
    if period == "monthly":
        return _utc(now_epoch).strftime("%Y-%m")
    raise ValueError(f"period must be one of {_PERIODS}, got {period!r}")


def resets_at(period: Period, now_epoch: float) -> float | None:
    """Epoch seconds at which the period containing ``now_epoch`` ends (None for ``total``)."""
    if period == "total":
        return None
    day = _utc(now_epoch).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day.timestamp() + 86400
    if period == "monthly":
        first = day.replace(day=1)
        nxt = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
        return nxt.timestamp()
    raise ValueError(f"period must be one of {_PERIODS}, got {period!r}")


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    allowed: bool
    remaining: Decimal
    message: str


def format_usd(amount: Decimal) -> str:
    """``$10.00``, ``$0.000123``: cents always, more digits only when they carry something."""
    cents = amount.quantize(Decimal("0.01"))
    if cents == amount or abs(amount) >= 1:
        return f"${cents:,.2f}"
    fine = amount.quantize(Decimal("0.000001")).normalize()
    return f"${fine:f}" if abs(fine) > 0 else f"${cents:,.2f}"


def check(spec: BudgetSpec, spent: Decimal, *, held: Decimal = Decimal(0),
          now_epoch: float | None = None) -> BudgetVerdict:
    """Whether ``spec`` admits another request after ``spent``, with ``held`` reserved by requests
    in flight; with ``now_epoch`` the message also says when the period resets."""
    spent, held = _to_decimal(spent, "spent"), _to_decimal(held, "held")
    remaining = max(spec.limit_usd - spent - held, Decimal(0))
    summary = f"{format_usd(spent)} of {format_usd(spec.limit_usd)} spent"
    if held:
        summary += f" and {format_usd(held)} held by requests in progress"
    reset = resets_at(spec.period, now_epoch) if now_epoch is not None else None
    if spent + held < spec.limit_usd:
        return BudgetVerdict(True, remaining, f"{spec.describe()}: {summary}, {format_usd(remaining)} left")
    if spent < spec.limit_usd:
        # Not spent yet: what is left is reserved, and comes back as those requests end.
        return BudgetVerdict(False, remaining, f"{spec.describe()} is fully reserved: {summary}; retry when they end")
    message = f"{spec.describe()} exhausted: {summary}"
    if reset is not None:
        message += f"; it resets at {_utc(reset).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    elif spec.period == "total":
        message += "; it does not reset"
    return BudgetVerdict(False, remaining, message)
