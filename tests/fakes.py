"""Working fakes for unit tests: in-process stand-ins that keep the promises of the real stores
(tests/unit/test_ledgers.py runs the same checks against the fake and the real ledgers)."""

from __future__ import annotations

from decimal import Decimal

from edge_ext.cost.ledger_api import Hold, Totals, from_micros, to_micros


class MemoryLedger:
    """A spend ledger (edge_ext.cost.ledger_api.BudgetLedger) in one process's memory."""

    def __init__(self) -> None:
        self._spend: dict[tuple[str, str], int] = {}
        self._estimated: dict[tuple[str, str], int] = {}
        self._holds: dict[tuple[str, str], dict[str, tuple[int, float, bool]]] = {}
        self._counts: dict[str, int] = {}

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
        if hold.due and held is None:
            return
        micros = to_micros(usd)
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
