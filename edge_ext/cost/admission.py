"""Budgets per client key and per tenant, and tokens per minute: reserve before any provider
call, settle to the real charge when the request ends. The I/O side: the driver (edge_ext.driver)
runs ``admit`` when the policy asks for it (edge_ext.policy.needs.Admit) and ``settle`` when the
policy leaves a settlement behind (needs.Settle); the ledger is injected.

Admission reserves an upper estimate of the request (edge_ext.cost.reserve) in the shared ledger,
atomically with the check, so concurrent requests on any worker or replica see each other: a
budget is overrun by at most one request's reservation. Every admission is settled exactly once,
when its stream ends (``settle``): to the answer's charge, estimated or reported, or to nothing
when no provider was called.

Tokens per minute are counted in fixed UTC-minute windows, one shared counter per key and minute
(an atomic increment in either store; a sliding window would need per-request records across
replicas). A request is admitted while its window is below the limit; its reservation is counted
in the minute it was admitted, and corrected there when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol

from edge_ext.auth import Caller
from edge_ext.cost.budget import BudgetSpec, BudgetVerdict, check, format_usd, period_key
from edge_ext.cost.calc import CostResult
from edge_ext.cost.admitted import Admission
from edge_ext.cost.ledger_api import Hold, LedgerUnavailable
from edge_ext.cost.pricing import Price
from edge_ext.cost.reserve import reservation
from edge_ext.errors import BudgetExceeded, BudgetStoreUnavailable, TokenRateExceeded
from edge_ext.usage import Usage

log = logging.getLogger("edge_ext.budget")

# A window is read in its own minute only; it is kept a little longer for requests that settle late.
WINDOW_TTL_S = 120
# A hold outlives any request (the route timeouts bound them) and the delivery of its outcome;
# unsettled by then, it is charged as estimated (edge_ext.cost.ledger_api).
HOLD_TTL_S = 900.0


class Charged(Protocol):
    """What a request was charged (edge_ext.policy.accounting.Charge)."""

    usage: Usage
    cost: CostResult
    estimated: bool


class BudgetStep:
    def __init__(self, specs: list[BudgetSpec], ledger, wall: Callable[[], float], tpm: dict[str, int] | None = None,
                 prices: Callable[[str], Sequence[Price]] = lambda model: (), hold_ttl_s: float = HOLD_TTL_S):
        self._by_key: dict[str, list[BudgetSpec]] = {}
        self._by_tenant: dict[str, list[BudgetSpec]] = {}
        for spec in specs:
            (self._by_key if spec.scope == "key" else self._by_tenant).setdefault(spec.id, []).append(spec)
        self._ledger, self._wall = ledger, wall
        self._tpm = tpm or {}
        self._prices, self._hold_ttl = prices, hold_ttl_s
        self._writes: set[asyncio.Task] = set()

    def _minute(self, key_id: str, now: float) -> str:
        return f"tpm:{key_id}:{int(now // 60)}"

    def _specs(self, caller: Caller) -> list[BudgetSpec]:
        return self._by_key.get(caller.key_id, []) + self._by_tenant.get(caller.tenant, [])

    async def status(self, scope: str = "", id_: str = "") -> list[tuple[BudgetSpec, str, Decimal, BudgetVerdict]]:
        """(spec, period key, spent, verdict) of every budget, for the admin API."""
        now = self._wall()
        out = []
        for spec in [s for specs in (*self._by_key.values(), *self._by_tenant.values()) for s in specs]:
            if (scope and spec.scope != scope) or (id_ and spec.id != id_):
                continue
            key = period_key(spec.period, now)
            totals = await self._ledger.totals(spec.scope_id, key, now)
            verdict = check(spec, totals.spent, held=totals.held, now_epoch=now)
            if totals.estimated:
                estimated = format_usd(totals.estimated)
                message = f"{verdict.message} ({estimated} of the spend estimated: answers cut short before their usage)"
                verdict = BudgetVerdict(verdict.allowed, verdict.remaining, message)
            out.append((spec, key, totals.spent, verdict))
        return out

    async def admit(self, caller: Caller, body: dict[str, Any], model: str) -> Admission | None:
        """Reserves the request's estimate against every limit of ``caller``, or raises the
        refusal; None when no limit applies."""
        specs, limit = self._specs(caller), self._tpm.get(caller.key_id)
        if not specs and limit is None:
            return None
        now = self._wall()
        estimate = reservation(body, self._prices(model))
        taken = Admission(input_tokens=estimate.input_tokens)
        try:
            if limit is not None:
                window = self._minute(caller.key_id, now)
                admitted, used = await self._ledger.take(window, estimate.tokens, limit, WINDOW_TTL_S)
                if not admitted:
                    retry = str(max(1, 60 - int(now % 60)))
                    raise TokenRateExceeded(f"tokens-per-minute limit of key '{caller.key_id}' reached: {used} of {limit}",
                                            headers=(("retry-after", retry),))
                taken = Admission(window=window, tokens=estimate.tokens, input_tokens=estimate.input_tokens)
            hold_id = uuid.uuid4().hex
            for spec in specs:
                # Due: charged as estimated if it expires unsettled (the request's outcome lost).
                hold = Hold(spec.scope_id, period_key(spec.period, now), hold_id, estimate.usd, now + self._hold_ttl, due=True)
                admitted, before = await self._ledger.reserve(hold, spec.limit_usd, now)
                if not admitted:
                    verdict = check(spec, before.spent, held=before.held, now_epoch=now)
                    raise BudgetExceeded(verdict.message, headers=(("retry-after", "60"),))
                taken = Admission((*taken.holds, hold), taken.window, taken.tokens, taken.input_tokens)
        except LedgerUnavailable as exc:
            self.settle(taken, None)
            raise BudgetStoreUnavailable("the budget store is unreachable and budgets fail closed; retry later") from exc
        except BaseException:
            # Refused, or the stream was cancelled while waiting: give back what was taken.
            self.settle(taken, None)
            raise
        return taken

    def settle(self, admission: Admission, charge: Charged | None) -> asyncio.Task | None:
        """Replaces the reservations with ``charge``, or releases them when it is None; the writes
        run in the background (the task returned, None when there is nothing to write)."""
        if not admission.holds and admission.window is None:
            return None
        task = asyncio.get_running_loop().create_task(self._settle(admission, charge))
        self._writes.add(task)
        task.add_done_callback(self._written)
        return task

    def settle_all(self, settlements: Sequence[tuple[Admission, Charged | None]]) -> None:
        """``settle`` for the outcomes of one batch: one background task writes them in order,
        each on its own (one that fails is logged and does not stop the others)."""
        pending = [(a, c) for a, c in settlements if a.holds or a.window is not None]
        if not pending:
            return
        task = asyncio.get_running_loop().create_task(self._settle_each(pending))
        self._writes.add(task)
        task.add_done_callback(self._written)

    async def _settle_each(self, settlements: list[tuple[Admission, Charged | None]]) -> None:
        for admission, charge in settlements:
            try:
                await self._settle(admission, charge)
            except Exception as exc:  # noqa: BLE001 - as _written reports a lone settlement
                log.warning("budget settlement failed (%s: %s); the reservation expires on its own", type(exc).__name__, exc)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Waits (at most ``timeout_s``) for the settlements in progress."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)

    # A worker service: stopping the worker waits for its last settlements.
    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        await self.flush()

    def _written(self, task: asyncio.Task) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("budget settlement failed (%s: %s); the reservation expires on its own", type(exc).__name__, exc)

    async def _settle(self, admission: Admission, charge: Charged | None) -> None:
        usd = charge.cost.usd if charge is not None and charge.cost.priced else Decimal(0)
        estimated = bool(charge is not None and charge.estimated)
        for hold in admission.holds:
            await self._ledger.settle(hold, usd, estimated)
        if admission.window is not None:
            tokens = charge.usage.total if charge is not None else 0
            if tokens != admission.tokens:
                await self._ledger.incr(admission.window, tokens - admission.tokens, WINDOW_TTL_S)

