"""The policy: decides, for each ext_proc message of one request, what Envoy should do.

Sans-I/O: no gRPC, no protos, no awaiting, no tasks; time from injected clocks. Each phase returns
a decision (edge_ext.policy.decisions) or a need: a description of the I/O it must wait for
(edge_ext.policy.needs). The driver (edge_ext.driver) performs a need and hands its result to
``resume``, which returns the next decision or need; work nobody waits for is left in
``StreamState.effects`` for the driver to run. The servicer in edge_ext.extproc turns decisions
into ProcessingResponses.

Routing state comes through small Protocols the wiring fills in (edge_ext.wiring): the router
runs breaker events through a ``BreakerStore`` (edge_ext.routing.breaker_store) and the answer's
time to first byte goes to a ``LatencySink``. They are called in line, not asked for as needs: a
pick must take a half-open breaker's probe slot atomically with choosing it, and an await per
request would cost more than the store's work (a read of an mmap'd page; a file lock of a few
microseconds when a breaker changes state or a latency sample is folded in). Which store, the files or Redis behind it, and the metrics it reports
transitions to are the wiring's choice; nothing the policy imports does I/O (test_import_graph).
Counters are bumped the same way, through callbacks the wiring passes in (``on_cache``, the
Accounting's ``on_charge``): in-memory increments.

The request body goes: validation -> budgets (Admit) -> prompt PII (inline, or ScanPrompt) ->
cache (edge_ext.policy.caching: LookUp, then JoinFlight, Claim or AwaitEntry) -> the router's
pick and the provider's shape (edge_ext.policy.route_step). The response phases are edge_ext.policy.answer's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.base import JSON_HEADERS
from edge_ext.apis.limits import RequestLimits
from edge_ext.apis.openai import OPENAI
from edge_ext.apis.operations import billed
from edge_ext.apis.responses import RESPONSES
from edge_ext.auth import ANONYMOUS, Caller, KeyRing
from edge_ext.config.models import Config
from edge_ext.cost.admitted import Admission
from edge_ext.errors import BodyNotAllowed, BodyTooLarge, EdgeError, InternalError, InvalidRequest, Unauthorized
from edge_ext.message import ChatRequest
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.answer import AnswerStep, settle_budgets
from edge_ext.policy.caching import CacheStep, Hit
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Mode, Respond
from edge_ext.policy.endpoints import dispatch
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.needs import Admit, FetchKey, Need, ParseBody, ScanPrompt
from edge_ext.policy.outcome import OutcomeStep, handed_over
from edge_ext.policy.pii import guard_prompt, scanned_apart
from edge_ext.policy.route_step import RouteStep
from edge_ext.policy.semantic import TIER as SEMANTIC_TIER
from edge_ext.policy.semantic import SemanticLookUp, SemanticStep, with_similarity
from edge_ext.policy.state import TRANSITIONS, Endpoint, Phase, StreamState
from edge_ext.policy.validation import RequestCheck, authenticated
from edge_ext.routing.latency import LatencySink
from edge_ext.routing.ratelimits import MemoryLimits
from edge_ext.routing.router import Router
from edge_ext.routing.breaker_store import MemoryBreakerStore

# Names the client's API for Envoy's local replies (error bodies in the caller's shape), and
# asks for the response headers: the status decides how much of the body the codec needs, and
# Envoy takes a mode override only in a headers reply.
_WATCH_RESPONSE = {api.name: Continue(metadata=(("api", api.name),), mode=Mode(response_headers=True)) for api in (OPENAI, ANTHROPIC, RESPONSES)}

Step = Decision | Need


def _raise(exc: BaseException) -> Step:
    raise exc


class Policy:
    """``cache``, ``key_store`` and ``budgets`` say whether the driver has one: the policy asks
    for lookups, key fetches and admissions only then."""

    def __init__(self, config: Config, clock: Callable[[], float], keys: dict[str, str | None],
                 wall: Callable[[], float] | None = None,
                 on_cache: Callable[[str, int], None] = lambda status, stored: None,
                 router: Router | None = None, latency: LatencySink | None = None, accounting: Accounting | None = None,
                 cache: bool = False, key_store: bool = False, budgets: bool = False, semantic: SemanticStep | None = None):
        self._clock = clock
        self._accounting = accounting
        self._budgets = budgets
        self._wall = wall or clock
        self._cache = CacheStep(config.cache, cache, self._wall, on_cache)
        self._router = router or Router(config, keys, MemoryBreakerStore(clock=self._wall), limits=MemoryLimits())
        self.grants = AttemptGrants(keys)
        self._max_body = config.processor.max_body_bytes
        self._check = RequestCheck(self._router, RequestLimits.of(config.processor), config.processor.max_body_bytes)
        self._max_scanned = config.processor.max_scanned_chars
        # Envoy's max_message_timeout is 30 s: the scan, then perhaps a single-flight wait.
        self._scan_extend_s = min(29.0, 10.0 + config.cache.single_flight_wait_s)
        # Plain answers skip the response phases unless the client must get its cost in a header.
        self.fast_path = config.accounting.fast_path and not (config.accounting.enabled and config.accounting.cost_header)
        self._route_chat = RouteStep(self._router, self.grants, clock, self._wall, self.fast_path, accounting is not None).chat
        auth = config.auth
        self._keyring = KeyRing({k.sha256: Caller(k.id, k.tenant, frozenset(k.models), k.pii) for k in auth.keys}) if auth.on else None
        self._default_pii = auth.pii
        self._key_store = key_store
        self._semantic = semantic
        answer = AnswerStep(self._router, self._cache, clock, self._wall, latency, accounting, semantic)
        # The response phases live in AnswerStep; bound here so the servicer calls them directly.
        self.on_response_headers = answer.on_headers
        self.on_response_body = answer.on_body
        self._settle = answer.on_stream_end
        # The response phases of 2-message requests, from their outcomes (any worker's).
        outcomes = OutcomeStep(self._router, latency, accounting, self._wall)
        self.on_outcome, self.on_outcomes = outcomes.apply, outcomes.apply_all
        # What each need's result continues with.
        self._resume = {FetchKey: self._keyed, Admit: self._admitted, ScanPrompt: self._scanned,
                        SemanticLookUp: self._semantic_found, ParseBody: self._parsed}

    def new_stream(self) -> StreamState:
        return StreamState(started=self._clock())

    def resume(self, st: StreamState, result: object) -> Step:
        """The result of the need the stream waits for: a value, or the EdgeError (or the
        RecursionError of a body too deep to walk) performing it raised."""
        need, st.waiting = st.waiting, None
        if isinstance(result, (EdgeError, RecursionError)):
            return self._refusing(st, partial(_raise, result))
        return self._refusing(st, partial(self._resume.get(type(need), self._cached), st, need, result))

    def _ask(self, st: StreamState, need: Need) -> Need:
        st.waiting = need
        return need

    # -- request headers ------------------------------------------------------------------
    def on_request_headers(self, st: StreamState, headers: dict[str, str], end_of_stream: bool) -> Step:
        st.method = headers.get(":method", "")
        st.path = headers.get(":path", "").split("?", 1)[0]
        st.request_id = headers.get("x-request-id", "")
        st.headers = headers
        # Refusals before dispatch answer in the shape the caller's headers suggest.
        # Anthropic's SDKs send anthropic-version, and their key in x-api-key without authorization.
        anthropic = "anthropic-version" in headers or ("x-api-key" in headers and "authorization" not in headers)
        st.api = ANTHROPIC if anthropic else OPENAI
        try:
            handler = dispatch(st.method, st.path)
            st.api = handler.api or st.api
            if not handler.body and not end_of_stream:
                raise BodyNotAllowed(f"{st.method} {st.path} takes no request body")
            st.handler = handler
            if not handler.authenticated:
                st.outcome = handler.endpoint.value
                st.enter(Phase.DONE)
                return CONTINUE
            if self._keyring is None:
                return self._after_auth(st, ANONYMOUS, end_of_stream)
            digest = self._keyring.digest(headers)
            caller = self._keyring.local(digest)
            if caller is None and self._key_store:
                return self._ask(st, FetchKey(digest, end_of_stream))
            return self._after_auth(st, caller, end_of_stream)
        except EdgeError as err:
            return self._fail(st, err)

    def _keyed(self, st: StreamState, need: FetchKey, caller: Caller | None) -> Decision:
        return self._after_auth(st, caller, need.end_of_stream)

    def _after_auth(self, st: StreamState, caller: Caller | None, end_of_stream: bool) -> Decision:
        headers = st.headers
        try:
            if caller is None:
                raise Unauthorized("Incorrect API key provided")
            st.caller = caller
            if st.handler.endpoint is Endpoint.MODELS:
                st.outcome = "models"
                st.enter(Phase.DONE)
                return Respond(200, st.api.models_body(self._router.models(), int(self._wall())), JSON_HEADERS, "edge_ext_models")
            length = headers.get("content-length")
            # isdigit() alone accepts digits like "²" that int() refuses: ASCII only.
            if length is not None and length.isascii() and length.isdigit() and int(length) > self._max_body:
                raise BodyTooLarge(f"the request body is {length} bytes; the limit is {self._max_body}")
            if end_of_stream:
                raise InvalidRequest("the request has no body; send a JSON object")
        except EdgeError as err:
            return self._fail(st, err)
        st.enter(Phase.BODY)
        return _WATCH_RESPONSE[st.api.name] if st.handler.response else CONTINUE

    # -- request body ---------------------------------------------------------------------
    def on_request_body(self, st: StreamState, body: bytes) -> Step:
        return self._refusing(st, partial(self._body, st, body))

    def _body(self, st: StreamState, body: bytes) -> Step:
        caller = authenticated(st)
        if st.phase is not Phase.BODY:
            raise InvalidRequest("the request body was already received")
        request = self._check.validate(st, caller, body, self._scan_extend_s)
        if isinstance(request, ParseBody):
            return self._ask(st, request)
        return self._validated(st, caller, request)

    def _parsed(self, st: StreamState, need: ParseBody, request: ChatRequest) -> Step:
        caller = authenticated(st)
        return self._validated(st, caller, self._check.checked(st, caller, request))

    def _validated(self, st: StreamState, caller: Caller, request: ChatRequest) -> Step:
        st.request = request
        if self._budgets and billed(request):
            return self._ask(st, Admit(caller, request))
        return self._guard(st)

    def _admitted(self, st: StreamState, need: Admit, admission: Admission | None) -> Step:
        st.admission = admission
        return self._guard(st)

    def _guard(self, st: StreamState) -> Step:
        request, pii = st.request, st.caller.pii or self._default_pii
        if pii == "off":
            return self._answer_or_route(st)  # nothing to scan for
        if scanned_apart(request, pii):
            # Envoy would answer 504 at its message timeout while a large body is scanned.
            return self._ask(st, ScanPrompt(request, pii, extend_s=self._scan_extend_s))
        st.request = guard_prompt(request, pii, self._max_scanned)
        return self._answer_or_route(st)

    def _scanned(self, st: StreamState, need: ScanPrompt, request: ChatRequest) -> Step:
        st.request = request
        return self._answer_or_route(st)

    def _answer_or_route(self, st: StreamState) -> Step:
        if not billed(st.request):
            return self._route_chat(st, st.request)  # a token count: free, and not cached
        return self._after_cache(st, self._cache.begin(st, st.request))

    def _cached(self, st: StreamState, need: Need, result: object) -> Step:
        return self._after_cache(st, self._cache.resume(st, need, result))

    def _after_cache(self, st: StreamState, step: Hit | Need | None) -> Step:
        if step is None:
            # A miss that leads its key may be a paraphrase of a stored prompt.
            ask = (self._semantic.ask(st, st.request)
                   if self._semantic and st.flight and st.flight.claimed and st.request.operation == "chat" else None)
            return self._ask(st, ask) if ask is not None else self._route_chat(st, st.request)
        if isinstance(step, Hit):
            return self._hit(st, step)
        return self._ask(st, step)

    def _semantic_found(self, st: StreamState, need: SemanticLookUp, result: object) -> Step:
        found = self._semantic.found(st, need, result)
        if found is None:
            return self._route_chat(st, st.request)
        entry, similarity = found
        self._cache.finish(st, entry)  # the followers of this exact key get the same answer
        return with_similarity(self._hit(st, Hit(entry, SEMANTIC_TIER)), similarity)

    def _refusing(self, st: StreamState, steps: Callable[[], Step]) -> Step:
        try:
            return steps()
        except EdgeError as err:
            return self._fail(st, err)
        except RecursionError:
            # A body json.loads accepted can still be too deep for a later walk (cache key,
            # translation, PII): refuse it like any other malformed request.
            return self._fail(st, InvalidRequest("the request body is nested too deeply"))

    def _hit(self, st: StreamState, hit: Hit) -> Respond:
        entry = hit.entry
        st.cache_status, st.provider, st.outcome = hit.tier, entry.provider, "cache_hit"
        if self._accounting is not None:
            self._accounting.saved(entry.api, st.model, entry.body)
        answer = self._cache.hit_response(hit, st.request)
        st.enter(Phase.DONE)
        return Respond(answer.status, answer.body, answer.headers, answer.details,
                       metadata=(("provider", entry.provider), ("model", st.model), ("cache", hit.tier)))

    @staticmethod
    def handed_over(st: StreamState) -> None:
        """Called once the body reply that ended a 2-message request's stream was sent."""
        handed_over(st)

    def on_stream_end(self, st: StreamState) -> None:
        """Every stream ends here, answered or not: a leader that stored nothing frees its followers,
        a request that never got an answer gives back its breaker probe slot, and what the request
        cost (estimated when it was cut short) settles its budget reservations."""
        self._cache.finish(st, None)
        if st.routed is not None and st.routed.take_verdict():
            self._router.release(st.provider)
        self._settle(st)
        st.enter(Phase.ENDED)

    @property
    def router(self) -> Router:
        return self._router

    def internal_error(self, st: StreamState, error_id: str) -> Respond:
        """The answer to something unexpected: a 500 in the caller's shape naming ``error_id``."""
        return self._fail(st, InternalError(error_id))

    def _fail(self, st: StreamState, err: EdgeError) -> Respond:
        st.outcome = err.code
        if not st.routed_at:
            settle_budgets(st, before_answer=True)
        if Phase.DONE in TRANSITIONS[st.phase]:  # not after the stream was handed over or ended
            st.enter(Phase.DONE)
        # x-edge-cache on every answer, errors included (Envoy adds it from this metadata).
        return Respond(err.status, st.api.error_body(err), JSON_HEADERS + err.headers, f"edge_ext_{err.code}",
                       metadata=(("cache", st.cache_status or "bypass"),))
