"""Budgets per client key and per tenant: refuse before any provider call once spent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from edge_ext.auth import Caller
from edge_ext.cost.budget import BudgetSpec, check, period_key
from edge_ext.cost.ledgers import LedgerUnavailable
from edge_ext.errors import BudgetExceeded, BudgetStoreUnavailable, TokenRateExceeded


class BudgetStep:
    """Spend budgets and tokens-per-minute limits, both counted in the shared ledger.

    Tokens per minute are counted in fixed UTC-minute windows: one shared counter per key and
    minute is an atomic increment in either store (a sliding window would need per-request
    records across replicas).
    """

    def __init__(self, specs: list[BudgetSpec], ledger, wall: Callable[[], float], tpm: dict[str, int] | None = None):
        self._by_key: dict[str, list[BudgetSpec]] = {}
        self._by_tenant: dict[str, list[BudgetSpec]] = {}
        for spec in specs:
            (self._by_key if spec.scope == "key" else self._by_tenant).setdefault(spec.id, []).append(spec)
        self._ledger, self._wall = ledger, wall
        self._tpm = tpm or {}
        self._writes: set[asyncio.Task] = set()

    def _minute(self, key_id: str, now: float) -> str:
        return f"tpm:{key_id}:{int(now // 60)}"

    async def status(self, scope: str = "", id_: str = "") -> list[tuple[BudgetSpec, str, Decimal, object]]:
        """(spec, period key, spent, verdict) of every budget, for the admin API."""
        now = self._wall()
        out = []
        for spec in [s for specs in (*self._by_key.values(), *self._by_tenant.values()) for s in specs]:
            if (scope and spec.scope != scope) or (id_ and spec.id != id_):
                continue
            key = period_key(spec.period, now)
            spent = await self._ledger.spent(spec.scope_id, key)
            out.append((spec, key, spent, check(spec, spent, now_epoch=now)))
        return out

    def _specs(self, caller: Caller) -> list[BudgetSpec]:
        return self._by_key.get(caller.key_id, []) + self._by_tenant.get(caller.tenant, [])

    async def check(self, caller: Caller) -> None:
        now = self._wall()
        limit = self._tpm.get(caller.key_id)
        if limit is not None:
            try:
                used = await self._ledger.count(self._minute(caller.key_id, now))
            except LedgerUnavailable as exc:
                raise BudgetStoreUnavailable("the budget store is unreachable and budgets fail closed; retry later") from exc
            if used >= limit:
                retry = str(max(1, 60 - int(now % 60)))
                raise TokenRateExceeded(f"tokens-per-minute limit of key '{caller.key_id}' reached: {used} of {limit}",
                                        headers=(("retry-after", retry),))
        for spec in self._specs(caller):
            try:
                spent = await self._ledger.spent(spec.scope_id, period_key(spec.period, now))
            except LedgerUnavailable as exc:
                raise BudgetStoreUnavailable("the budget store is unreachable and budgets fail closed; retry later") from exc
            verdict = check(spec, spent, now_epoch=now)
            if not verdict.allowed:
                raise BudgetExceeded(verdict.message, headers=(("retry-after", "60"),))

    def record(self, caller: Caller, usd: Decimal | None, tokens: int) -> None:
        specs = self._specs(caller) if usd else []
        counts_tokens = caller.key_id in self._tpm and tokens > 0
        if not specs and not counts_tokens:
            return
        now = self._wall()
        task = asyncio.get_running_loop().create_task(self._add(caller, specs, now, usd, tokens if counts_tokens else 0))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _add(self, caller: Caller, specs: list[BudgetSpec], now: float, usd: Decimal | None, tokens: int) -> None:
        for spec in specs:
            await self._ledger.add(spec.scope_id, period_key(spec.period, now), usd)
        if tokens:
            await self._ledger.incr(self._minute(caller.key_id, now), tokens, 120)
