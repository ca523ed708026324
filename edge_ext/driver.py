"""The I/O half of the policy: performs what it asks for and runs what it leaves behind.

The policy (edge_ext.policy.engine) is sans-I/O: a phase returns a decision, or a need
(edge_ext.policy.needs) describing the I/O it must wait for. This is the one place those needs
meet asyncio and the real stores: the answer cache and its single flights, the semantic cache
(its embedding call and index), the client key store, the budget ledger, and the thread that scans
large prompts. ``perform`` runs one need and hands
its result back to the policy; ``run_effects`` runs the work the policy left behind, off the
request path (cache writes, settlements, freeing the followers of a miss).

The servicer (edge_ext.extproc.servicer) calls ``perform`` itself, to extend Envoy's deadline
before a long wait; ``run`` is the same loop without that, for tests and tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edge_ext.auth import Caller
from edge_ext.auth_redis import RedisKeyStore
from edge_ext.cache.entry import Entry
from edge_ext.cache.singleflight import SingleFlight
from edge_ext.cache.tiered import TieredCache
from edge_ext.config.models import Config
from edge_ext.cost.admission import Admission, BudgetStep
from edge_ext.errors import EdgeError
from edge_ext.message import ChatRequest
from edge_ext.policy.decisions import Continue, Decision, Respond
from edge_ext.policy.engine import Policy, Step
from edge_ext.policy.needs import (Admit, AwaitEntry, Claim, FetchKey, JoinFlight, LookUp, Need, ParseBody, Release,
                                   Resolve, ScanPrompt, Settle, Store)
from edge_ext.policy.outcome import Outcome, Settled
from edge_ext.policy.pii import INLINE_BYTES, guard_prompt, scanned_apart
from edge_ext.policy.semantic import SemanticLookUp, StoreSemantic
from edge_ext.policy.state import StreamState

if TYPE_CHECKING:  # numpy and usearch load only where the semantic cache is configured (wiring)
    from edge_ext.semantic.cache import Lookup, SemanticCache


# How long a refusal waits for the release of its reservations (a ledger write: a millisecond
# or two on a healthy store; a store that is slower than this finishes after the answer).
RELEASE_WAIT_S = 0.1
# A need marked slow asks Envoy for more time once it has run this long before the message's
# deadline (Envoy must receive the extension before the deadline passes).
SOFT_MARGIN_S = 0.15


class PromptGuard:
    """``guard_prompt`` with the configured cap, in a thread for a body scanned apart; the same
    thread decodes a body parsed apart (edge_ext.policy.validation.PARSE_APART_BYTES)."""

    def __init__(self, max_chars: int, inline_bytes: int = INLINE_BYTES):
        self._max_chars = max_chars
        self._inline_bytes = inline_bytes
        # One thread: hostile bodies queue behind each other instead of splitting the GIL
        # further between them and the loop.
        self._executor: ThreadPoolExecutor | None = None

    async def check(self, request: ChatRequest, policy: str) -> ChatRequest:
        if not scanned_apart(request, policy, self._inline_bytes):
            return guard_prompt(request, policy, self._max_chars)
        return await self.apart(guard_prompt, request, policy, self._max_chars)

    async def apart(self, work: Callable[..., ChatRequest], *args: Any) -> ChatRequest:
        """``work(*args)`` in the thread, off the event loop (a large body's scan or parse)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-ext-pii")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)


class Driver:
    def __init__(self, policy: Policy, config: Config, cache: TieredCache | None = None,
                 key_store: RedisKeyStore | None = None, budgets: BudgetStep | None = None,
                 semantic: SemanticCache | None = None):
        self.policy = policy
        self.soft_deadline_s = max(0.0, config.processor.message_timeout_ms / 1000 - SOFT_MARGIN_S)
        self._cache, self._key_store, self._budgets, self._semantic = cache, key_store, budgets, semantic
        self._flights = SingleFlight(config.cache.single_flight_wait_s)
        self._guard = PromptGuard(config.processor.max_scanned_chars)
        self._needs: dict[type, Callable[[Any], Awaitable[object]]] = {
            FetchKey: self._fetch_key, Admit: self._admit, ScanPrompt: self._scan, ParseBody: self._parse, LookUp: self._look_up,
            JoinFlight: self._join, Claim: self._claim, AwaitEntry: self._await_entry,
            SemanticLookUp: self._semantic_look_up,
        }
        self._effects: dict[type, Callable[[Any], asyncio.Task | None]] = {
            Store: self._store, Resolve: self._resolve, Release: self._release, Settle: self._settle,
            StoreSemantic: self._store_semantic,
        }

    async def perform(self, st: StreamState, need: Need) -> Step:
        """Performs ``need``; the policy's next step with its result (or the refusal it raised)."""
        try:
            result = await self._needs[type(need)](need)
        except (EdgeError, RecursionError) as exc:
            result = exc
        return self.policy.resume(st, result)

    def run_effects(self, st: StreamState) -> list[asyncio.Task]:
        """Starts the work ``st`` left behind; returns what its answer must wait for (a refusal's
        release of its reservations: ``answer_after``)."""
        waits: list[asyncio.Task] = []
        if st.effects:  # most messages leave none
            for effect in st.take_effects():
                task = self._effects[type(effect)](effect)
                if task is not None:
                    waits.append(task)
        return waits

    @staticmethod
    async def answer_after(waits: list[asyncio.Task]) -> None:
        """Waits for ``waits``, at most RELEASE_WAIT_S: a slower ledger finishes after the answer."""
        await asyncio.wait(waits, timeout=RELEASE_WAIT_S)

    async def run(self, st: StreamState, step: Step) -> Decision:
        """Performs needs until the policy decides; then runs the effects it left."""
        while not isinstance(step, (Continue, Respond)):
            step = await self.perform(st, step)
        waits = self.run_effects(st)
        if waits:
            await self.answer_after(waits)
        return step

    def end(self, st: StreamState) -> None:
        """The stream closed (answered, failed or cancelled)."""
        self.policy.on_stream_end(st)
        self.run_effects(st)

    def outcome(self, outcome: Outcome) -> Settled | None:
        """A 2-message request's outcome (edge_ext.extproc.access_log)."""
        return self.outcomes((outcome,))[0]

    def outcomes(self, outcomes: Sequence[Outcome]) -> list[Settled | None]:
        """The outcomes of one access log message, in order; their settlements written together."""
        done = self.policy.on_outcomes(outcomes)
        settlements = []
        for st in done:
            if st is not None and st.effects:
                for effect in st.take_effects():
                    if type(effect) is Settle:
                        settlements.append((effect.admission, effect.charge))
                    else:
                        self._effects[type(effect)](effect)
        if settlements:
            self._budgets.settle_all(settlements)
        return done

    # -- needs ------------------------------------------------------------------------------
    async def _fetch_key(self, need: FetchKey) -> Caller | None:
        known, caller = self._key_store.cached(need.digest)
        return caller if known else await self._key_store.lookup(need.digest)

    async def _admit(self, need: Admit) -> Admission | None:
        return await self._budgets.admit(need.caller, need.request.body, need.request.model)

    async def _scan(self, need: ScanPrompt) -> ChatRequest:
        return await self._guard.check(need.request, need.pii)

    async def _parse(self, need: ParseBody) -> ChatRequest:
        return await self._guard.apart(need.parse, need.body, need.limits)

    async def _look_up(self, need: LookUp) -> tuple[Entry | None, str]:
        return await self._cache.get(need.key)

    async def _join(self, need: JoinFlight) -> bool:
        return self._flights.lead(need.key)

    async def _claim(self, need: Claim) -> bool:
        return await self._cache.claim(need.key, need.ttl_s)

    async def _await_entry(self, need: AwaitEntry) -> Entry | None:
        if need.elsewhere:
            return await self._cache.wait_for(need.key, self._flights.max_wait)
        return await self._flights.follow(need.key)

    async def _semantic_look_up(self, need: SemanticLookUp) -> Lookup:
        return await self._semantic.lookup(need.prompt, need.threshold)

    # -- effects ----------------------------------------------------------------------------
    def _store(self, effect: Store) -> None:
        self._cache.put(effect.key, effect.entry, effect.ttl)

    def _resolve(self, effect: Resolve) -> None:
        self._flights.finish(effect.key, effect.entry)

    def _release(self, effect: Release) -> None:
        self._cache.release(effect.key)

    def _store_semantic(self, effect: StoreSemantic) -> None:
        p = effect.pending
        self._semantic.store(p.prompt, p.vector, effect.entry, p.namespace, p.model, effect.ttl)

    def _settle(self, effect: Settle) -> asyncio.Task | None:
        task = self._budgets.settle(effect.admission, effect.charge)
        return task if effect.before_answer else None
