"""The policy: decides, for each ext_proc message of one request, what Envoy should do.

Pure: no gRPC, no protos, time from injected clocks. The servicer in edge_ext.extproc turns
its decisions into ProcessingResponses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.base import JSON_HEADERS, error_response
from edge_ext.apis.limits import RequestLimits
from edge_ext.apis.openai import OPENAI
from edge_ext.auth import ANONYMOUS, Caller, KeyRing
from edge_ext.cache.tiered import TieredCache
from edge_ext.config.models import Config
from edge_ext.errors import BodyNotAllowed, BodyTooLarge, EdgeError, InternalError, InvalidRequest, Unauthorized
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.answer import AnswerStep
from edge_ext.policy.budgeting import BudgetStep
from edge_ext.policy.caching import CacheStep, Recorder
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Defer, Mode, Respond
from edge_ext.policy.endpoints import dispatch
from edge_ext.policy.exchange import upstream_body
from edge_ext.policy.failover import retry_headers
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.outcome import OutcomeStep, answer_unseen, hand_over, handed_over
from edge_ext.policy.pii import PromptGuard
from edge_ext.policy.response import codec_for
from edge_ext.policy.semantic import TIER as SEMANTIC_TIER
from edge_ext.policy.semantic import SemanticStep, with_similarity
from edge_ext.policy.state import Endpoint, StreamState
from edge_ext.policy.validation import RequestCheck, authenticated, requested_output
from edge_ext.providers.base import ChatRequest
from edge_ext.providers.registry import adapter_for
from edge_ext.routing.router import Router
from edge_ext.routing.shared_state import MemoryBreakerStore

# The header Envoy's route reads to pick the provider cluster (route.cluster_header).
CLUSTER_HEADER = "x-edge-cluster"


# Names the client's API for Envoy's local replies (error bodies in the caller's shape), and
# asks for the response headers: the status decides how much of the body the codec needs, and
# Envoy takes a mode override only in a headers reply.
_WATCH_RESPONSE = {api.name: Continue(metadata=(("api", api.name),), mode=Mode(response_headers=True)) for api in (OPENAI, ANTHROPIC)}


class Policy:
    def __init__(self, config: Config, clock: Callable[[], float], keys: dict[str, str | None],
                 wall: Callable[[], float] | None = None, cache: TieredCache | None = None, key_store: Any = None,
                 on_cache: Callable[[str, int], None] = lambda status, stored: None,
                 router: Router | None = None, latency: Any = None, accounting: Accounting | None = None,
                 budgets: BudgetStep | None = None, semantic: SemanticStep | None = None):
        self._clock = clock
        self._accounting = accounting
        self._budgets = budgets
        self._wall = wall or clock
        self._latency = latency
        self._cache = CacheStep(config.cache, cache, self._wall)
        self._semantic = semantic
        self._on_cache = on_cache
        self._router = router or Router(config, keys, MemoryBreakerStore(clock=self._wall))
        self.grants = AttemptGrants(keys)
        self._max_body = config.processor.max_body_bytes
        self._check = RequestCheck(self._router, RequestLimits.of(config.processor), config.processor.max_body_bytes)
        self._pii = PromptGuard(config.processor.max_scanned_chars)
        # Envoy's max_message_timeout is 30 s: the scan, then perhaps a single-flight wait.
        self._scan_extend_s = min(29.0, 10.0 + config.cache.single_flight_wait_s)
        # Plain answers skip the response phases unless the client must get its cost in a header.
        self._fast_path = config.accounting.fast_path and not (config.accounting.enabled and config.accounting.cost_header)
        auth = config.auth
        self._keyring = KeyRing({k.sha256: Caller(k.id, k.tenant, frozenset(k.models), k.pii) for k in auth.keys}) if auth.on else None
        self._default_pii = auth.pii
        self._key_store = key_store
        answer = AnswerStep(self._router, self._cache, clock, self._wall, latency, accounting, budgets, on_cache, semantic)
        # The response phases live in AnswerStep; bound here so the servicer calls them directly.
        self.on_response_headers = answer.on_headers
        self.on_response_body = answer.on_body
        self._settle = answer.on_stream_end
        # The response phases of 2-message requests, from their outcomes (any worker's).
        self.on_outcome = OutcomeStep(self._router, latency, accounting, budgets, self._wall).apply

    def new_stream(self) -> StreamState:
        return StreamState(started=self._clock(), api=OPENAI)

    # -- request headers ------------------------------------------------------------------
    def on_request_headers(self, st: StreamState, headers: dict[str, str], end_of_stream: bool) -> Decision:
        st.method = headers.get(":method", "")
        st.path = headers.get(":path", "").split("?", 1)[0]
        st.request_id = headers.get("x-request-id", "")
        st.headers = headers
        # Refusals before dispatch answer in the shape the caller's headers suggest.
        st.api = ANTHROPIC if "anthropic-version" in headers else OPENAI
        try:
            handler = dispatch(st.method, st.path)
            st.api = handler.api or st.api
            if not handler.body and not end_of_stream:
                raise BodyNotAllowed(f"{st.method} {st.path} takes no request body")
            st.handler = handler
            if not handler.authenticated:
                st.outcome = handler.endpoint.value
                return CONTINUE
            if self._keyring is not None:
                digest = self._keyring.digest(headers)
                caller = self._keyring.local(digest)
                if caller is None and self._key_store is not None:
                    known, caller = self._key_store.cached(digest)
                    if not known:
                        return Defer(0, self._remote_auth(st, digest, end_of_stream))
                return self._after_auth(st, caller, end_of_stream)
            return self._after_auth(st, ANONYMOUS, end_of_stream)
        except EdgeError as err:
            return self._fail(st, err)

    async def _remote_auth(self, st: StreamState, digest: str, end_of_stream: bool) -> Decision:
        try:
            caller = await self._key_store.lookup(digest)
        except EdgeError as err:
            return self._fail(st, err)
        return self._after_auth(st, caller, end_of_stream)

    def _after_auth(self, st: StreamState, caller: Caller | None, end_of_stream: bool) -> Decision:
        headers = st.headers
        try:
            if caller is None:
                raise Unauthorized("Incorrect API key provided")
            st.caller = caller
            if st.handler.endpoint is Endpoint.MODELS:
                st.outcome = "models"
                return Respond(200, st.api.models_body(self._router.models(), int(self._wall())), JSON_HEADERS, "edge_ext_models")
            length = headers.get("content-length")
            # isdigit() alone accepts digits like "²" that int() refuses: ASCII only.
            if length is not None and length.isascii() and length.isdigit() and int(length) > self._max_body:
                raise BodyTooLarge(f"the request body is {length} bytes; the limit is {self._max_body}")
            if end_of_stream:
                raise InvalidRequest("the request has no body; send a JSON object")
        except EdgeError as err:
            return self._fail(st, err)
        return _WATCH_RESPONSE[st.api.name] if st.handler.response else CONTINUE

    # -- request body ---------------------------------------------------------------------
    async def on_request_body(self, st: StreamState, body: bytes) -> Decision:
        return await self._refusing(st, self._body(st, body))

    async def _body(self, st: StreamState, body: bytes) -> Decision:
        caller = authenticated(st)
        request = self._check.validate(st, caller, body)
        if self._budgets is not None:
            st.admission = await self._budgets.admit(caller, request.body, request.model)
        pii = caller.pii or self._default_pii
        if self._pii.offloads(request, pii):
            # A large body is scanned in a thread; Envoy would answer 504 at message_timeout.
            return Defer(self._scan_extend_s, self._refusing(st, self._scanned(st, request, pii)))
        return await self._answer_or_route(st, self._pii.inline(request, pii))

    async def _scanned(self, st: StreamState, request: ChatRequest, pii: str) -> Decision:
        decision = await self._answer_or_route(st, await self._pii.check(request, pii))
        # A follower of an identical request in flight waits here too, within the same extension.
        return await decision.then if isinstance(decision, Defer) else decision

    async def _answer_or_route(self, st: StreamState, request: ChatRequest) -> Decision:
        hit = await self._lookup(st, request)
        return hit or self._route_chat(st, request)

    async def _refusing(self, st: StreamState, steps: Awaitable[Decision]) -> Decision:
        try:
            return await steps
        except EdgeError as err:
            return self._fail(st, err)
        except RecursionError:
            # A body json.loads accepted can still be too deep for a later walk (cache key,
            # translation, PII): refuse it like any other malformed request.
            return self._fail(st, InvalidRequest("the request body is nested too deeply"))

    async def _lookup(self, st: StreamState, request) -> Decision | None:
        """A hit, a wait for the same answer in flight, or the semantic step's hit or route; None:
        the caller routes the request."""
        directive = self._cache.directive(st.headers, request)
        st.cache_status, st.cache_ttl = directive.status, directive.ttl
        if directive.store or directive.lookup:
            tenant = st.caller.tenant if st.caller is not ANONYMOUS else None
            st.cache_key = self._cache.key(st.headers, request, tenant)
        if not directive.lookup:
            return None
        entry, tier = await self._cache.lookup(st.cache_key)
        if entry is not None:
            self._on_cache(tier, 0)
            return self._hit(st, request, entry, tier)
        if not self._cache.flights.lead(st.cache_key):
            return Defer(self._cache.flights.max_wait + 1, self._follow(st, request, self._cache.flights.follow, "hit-l1"))
        st.leading = True
        # Across workers and replicas: one claim per key in the shared tier.
        if not await self._cache.claim(st.cache_key):
            return Defer(self._cache.flights.max_wait + 1, self._follow(st, request, self._cache.wait_elsewhere, "hit-l2"))
        st.claimed = True
        ask = self._semantic.prepare(st, request) if self._semantic is not None else None
        if ask is not None:
            if self._semantic.extend_s is not None:
                return Defer(self._semantic.extend_s, self._refusing(st, self._semantic_lookup(st, request, ask)))
            return await self._semantic_lookup(st, request, ask)
        self._on_cache("miss", 0)
        st.recorder = Recorder(request.api, request.stream)
        return None

    async def _semantic_lookup(self, st: StreamState, request, ask) -> Decision:
        found = await self._semantic.lookup(st, ask)
        if found is not None:
            entry, similarity = found
            self._on_cache(SEMANTIC_TIER, 0)
            self._cache.finish(st, entry)  # followers of this exact key get the same answer
            return with_similarity(self._hit(st, request, entry, SEMANTIC_TIER), similarity)
        self._on_cache("miss", 0)
        st.recorder = Recorder(request.api, request.stream)
        return self._route_chat(st, request)

    async def _follow(self, st: StreamState, request, wait, tier: str) -> Decision:
        entry = await wait(st.cache_key)
        if entry is not None:
            self._on_cache(tier, 0)
            self._cache.finish(st, entry)
            return self._hit(st, request, entry, tier)
        # The leader's answer was not stored: this request asks the provider itself.
        self._on_cache("miss", 0)
        st.recorder = Recorder(request.api, request.stream)
        try:
            return self._route_chat(st, request)
        except EdgeError as err:
            return self._fail(st, err)

    def _hit(self, st: StreamState, request, entry, tier: str) -> Respond:
        st.cache_status, st.provider, st.outcome = tier, entry.provider, "cache_hit"
        if self._accounting is not None:
            self._accounting.saved(entry.api, st.model, entry.body)
        hit = self._cache.hit_response(entry, tier, request)
        return Respond(hit.status, hit.body, hit.headers, hit.details,
                       metadata=(("provider", entry.provider), ("model", st.model), ("cache", tier)))

    @staticmethod
    def handed_over(st: StreamState) -> None:
        """Called once the body reply that ended a 2-message request's stream was sent."""
        handed_over(st)

    def on_stream_end(self, st: StreamState) -> None:
        """Every stream ends here, answered or not: a leader that stored nothing frees its followers,
        a request that never got an answer gives back its breaker probe slot, and what the request
        cost (estimated when it was cut short) settles its budget reservations."""
        self._cache.finish(st, None)
        if st.breaker_pending:
            st.breaker_pending = False
            self._router.release(st.provider)
        self._settle(st)

    @property
    def router(self) -> Router:
        return self._router

    @property
    def budgets(self) -> BudgetStep | None:
        return self._budgets

    @property
    def semantic(self):
        """The semantic cache (for the admin API's purge), or None."""
        return self._semantic.cache if self._semantic is not None else None

    def _route_chat(self, st: StreamState, request: ChatRequest) -> Decision:
        caller = authenticated(st)
        if st.cache_key and st.recorder is None and st.cache_status == "bypass":
            st.recorder = Recorder(request.api, request.stream)  # no-cache: refresh the entry
        wanted = requested_output(request.body)
        target = self._router.pick(request.model, request.body, wanted[1] if wanted else None)
        provider = target.provider
        # From here the router awaits this request's verdict: whatever follows, a refusal
        # included, on_stream_end gives a half-open probe slot back.
        st.provider, st.breaker_pending = provider.name, True
        adapter = adapter_for(provider.kind)
        upstream = adapter.upstream(provider, target.api_key, target.upstream_model, st.headers)
        body = upstream_body(request, adapter.wire_api, provider, target.upstream_model)
        st.outcome, st.routed_at = "routed", self._clock()
        st.codec = codec_for(request, adapter.wire_api, body.strip_usage, int(self._wall()))
        st.same_api = request.api == adapter.wire_api
        st.upstream_api, st.upstream_model = adapter.wire_api, target.upstream_model
        st.request, st.plan = request, target.plan
        grant = self.grants.metadata(provider.name, request.model, target.plan) if len(target.plan) > 1 else ()
        set_headers = [(CLUSTER_HEADER, target.cluster), (":path", upstream.path), *retry_headers(target),
                       *upstream.set_headers]
        if body.body is not None:
            # With request headers SEND and the body BUFFERED, content-length is ours to fix.
            set_headers.append(("content-length", str(len(body.body))))
        metadata = (("provider", st.provider), ("model", st.model), ("cache", st.cache_status or "off"),
                    ("tenant", caller.tenant), ("key_id", caller.key_id), *grant)
        last = self._fast_path and answer_unseen(self._router, st, target.plan)
        if last:
            metadata += hand_over(st, request, self._accounting is not None)
        return Continue(
            set_headers=tuple(set_headers),
            remove_headers=upstream.remove_headers,
            body=body.body,
            clear_route_cache=True,
            metadata=metadata,
            last=last,
        )

    def internal_error(self, st: StreamState, error_id: str) -> Respond:
        """The answer to something unexpected: a 500 in the caller's shape naming ``error_id``."""
        return self._fail(st, InternalError(error_id))

    def _fail(self, st: StreamState, err: EdgeError) -> Respond:
        st.outcome = err.code
        reply = error_response(st.api, err)
        # x-edge-cache on every answer, errors included (Envoy adds it from this metadata).
        return Respond(reply.status, reply.body, reply.headers, reply.details,
                       metadata=(("cache", st.cache_status or "bypass"),))
