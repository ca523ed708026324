"""Budgets per client key and per tenant: refuse before any provider call once spent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from edge_ext.auth import Caller
from edge_ext.cost.budget import BudgetSpec, check, period_key
from edge_ext.cost.ledgers import LedgerUnavailable
from edge_ext.errors import EdgeError, RateLimited


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class BudgetStoreUnavailable(EdgeError):
    status = 503
    code = "budget_store_unavailable"
    type = "api_error"


class BudgetStep:
    def __init__(self, specs: list[BudgetSpec], ledger, wall: Callable[[], float]):
        self._by_key: dict[str, list[BudgetSpec]] = {}
        self._by_tenant: dict[str, list[BudgetSpec]] = {}
        for spec in specs:
            (self._by_key if spec.scope == "key" else self._by_tenant).setdefault(spec.id, []).append(spec)
        self._ledger, self._wall = ledger, wall
        self._writes: set[asyncio.Task] = set()

    def _specs(self, caller: Caller) -> list[BudgetSpec]:
        return self._by_key.get(caller.key_id, []) + self._by_tenant.get(caller.tenant, [])

    async def check(self, caller: Caller) -> None:
        now = self._wall()
        for spec in self._specs(caller):
            try:
                spent = await self._ledger.spent(spec.scope_id, period_key(spec.period, now))
            except LedgerUnavailable as exc:
                raise BudgetStoreUnavailable("the budget store is unreachable and budgets fail closed; retry later") from exc
            verdict = check(spec, spent, now_epoch=now)
            if not verdict.allowed:
                raise BudgetExceeded(verdict.message, headers=(("retry-after", "60"),))

    def record(self, caller: Caller, usd: Decimal) -> None:
        specs = self._specs(caller)
        if not specs or usd <= 0:
            return
        now = self._wall()
        task = asyncio.get_running_loop().create_task(self._add(specs, now, usd))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _add(self, specs: list[BudgetSpec], now: float, usd: Decimal) -> None:
        for spec in specs:
            await self._ledger.add(spec.scope_id, period_key(spec.period, now), usd)
