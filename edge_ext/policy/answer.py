"""The response half of the policy: who answered, what the client gets, what it cost (also when
the answer is cut short). Owns the request's ``Answering`` sub-state (edge_ext.policy.state).

Sans-I/O like the rest of the policy: the servicer hands it the response headers (with Envoy's
code details and, after an in-flight failover, who served the request after how many attempts)
and each body chunk it asked for; storing the answer and settling the reservations are left as
effects (edge_ext.policy.needs) for the driver. The breaker verdict and the time to first byte go
to the router's store and the latency sink the wiring injected (edge_ext.policy.engine says why
in line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_ext.apis.operations import billed
from edge_ext.policy.accounting import Accounting, Meter, with_embedding
from edge_ext.policy.caching import CacheStep
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Mode, ResponseMode
from edge_ext.policy.failover import settle
from edge_ext.policy.needs import Settle
from edge_ext.policy.refusal import FALLBACK_HEADER
from edge_ext.policy.state import TRANSITIONS, Answering, Phase, StreamState
from edge_ext.routing.failures import FailureKind, classify
from edge_ext.routing.latency import LatencySink
from edge_ext.routing.router import Router

if TYPE_CHECKING:
    from edge_ext.policy.semantic import SemanticStep


class AnswerStep:
    def __init__(self, router: Router, cache: CacheStep, clock: Callable[[], float], wall: Callable[[], float],
                 latency: LatencySink | None, accounting: Accounting | None, semantic: SemanticStep | None = None):
        self._router, self._cache, self._clock, self._wall = router, cache, clock, wall
        self._latency, self._accounting, self._semantic = latency, accounting, semantic

    def on_headers(self, st: StreamState, status: int, headers: dict[str, str], details: str = "via_upstream",
                   served: str = "", attempts: int = 1) -> Decision:
        routed = st.routed
        if st.phase is not Phase.ROUTED or routed is None:
            # Not a request this processor routed (Envoy's own reply, or one it let through):
            # nothing to read, and no request message may follow an answer.
            if Phase.DONE in TRANSITIONS[st.phase]:
                st.enter(Phase.DONE)
            return CONTINUE
        st.enter(Phase.ANSWERING)
        st.response_status, st.response_details = status, details
        from_upstream = details == "via_upstream"
        failed_over = False
        if routed.take_verdict():
            # Set by the route from the attempt filter's metadata; a provider cannot name another group.
            refused = headers.get(FALLBACK_HEADER, "")
            refused = refused if refused and refused == self._router.refusal_fallback(st.model) else ""
            failed_over = settle(self._router, st, served, attempts, int(self._wall()), refused)
            self._router.report(st.provider, status, details, headers.get("retry-after"))
            if from_upstream:
                self._router.observe_limits(st.provider, headers)
            # After a failover the time includes the failed attempts: not this provider's latency.
            if from_upstream and self._latency is not None and not failed_over:
                self._latency.observe(st.provider, self._clock() - st.routed_at)
        if not from_upstream:
            # Envoy's own local reply (upstream unreachable, reset, timeout): already rendered in
            # the caller's shape by local_reply_config; nothing to translate.
            routed.codec = None
        meter = None
        if status != 200 or not from_upstream:
            self._cache.drop(st)  # only complete successes are stored
        elif self._accounting is not None and st.upstream_api and billed(st.request):
            meter = Meter(st.upstream_api, st.stream)
        mode = routed.codec.mode(status) if routed.codec else ResponseMode.NONE
        if (self._cache.recording(st) is not None or meter is not None) and mode is ResponseMode.NONE:
            mode = ResponseMode.STREAMED if st.stream else ResponseMode.BUFFERED
        st.answering = Answering(mode, meter)
        # The route's x-edge-provider came from the metadata set when the request was routed.
        served_headers = (("x-edge-provider", st.provider),) if failed_over else ()
        metadata = (("provider", st.provider),) if failed_over else ()
        if mode is ResponseMode.NONE:
            return Continue(set_headers=served_headers, metadata=metadata) if failed_over else CONTINUE
        remove = ()
        if mode is ResponseMode.STREAMED:
            # Translated events change length; headers leave before the first chunk is seen.
            remove = ("content-length",)
        return Continue(set_headers=served_headers, remove_headers=remove, metadata=metadata,
                        mode=Mode(response_headers=True, response_body=mode))

    def on_body(self, st: StreamState, chunk: bytes, end_of_stream: bool) -> Decision:
        answering, routed = st.answering, st.routed
        if st.phase is not Phase.ANSWERING or answering is None or routed is None:
            return CONTINUE  # no answer this processor reads
        st.response_bytes += len(chunk)
        codec = routed.codec
        out = codec.transform(st.response_status, chunk, end_of_stream) if codec else None
        recorder = self._cache.recording(st)
        if recorder is not None:
            # Same API: record what the provider sent (with the usage we asked for on the
            # client's behalf); translated: record what the client gets, in its shape.
            recorder.feed(chunk if out is None or st.same_api else out)
            if end_of_stream:
                entry = self._cache.store(st, st.provider)
                if self._semantic is not None:
                    self._semantic.remember(st, entry)
        # Headers were sent to us and are held until this reply when BUFFERED: length, status
        # and cost headers are ours to set. STREAMED headers are long gone.
        buffered = answering.mode is ResponseMode.BUFFERED
        set_headers: list[tuple[str, str]] = []
        metadata: tuple[tuple[str, str], ...] = ()
        if answering.meter is not None:
            answering.meter.feed(chunk)
            if end_of_stream:
                meter, answering.meter = answering.meter, None
                usage = meter.usage()
                estimated = usage is None
                if estimated:
                    usage = meter.estimate(st.request.body)
                charge = st.charge = self._accounting.charge(st.provider, st.upstream_model, usage, estimated)
                metadata = charge.metadata()
                # Now, not when Envoy closes the stream: the client may send its next request
                # as soon as it has this answer.
                settle_budgets(st)
                if buffered:
                    set_headers.extend(charge.headers())
        if out is not None and buffered:
            set_headers.append(("content-length", str(len(out))))
            override = getattr(codec, "status_override", None)
            if override:
                set_headers.append((":status", str(override)))
        if out is None and not set_headers and not metadata:
            return CONTINUE
        return Continue(set_headers=tuple(set_headers), body=out, metadata=metadata)

    def on_stream_end(self, st: StreamState) -> None:
        """An answer cut short (client gone, provider or Envoy reset) is charged what it delivered,
        estimated; then the request's reservations are settled to its charge, or released."""
        if st.phase is Phase.HANDED_OVER:
            return  # answered in 2 messages: its outcome settles it (edge_ext.policy.outcome)
        if (st.charge is None and st.routed_at and self._accounting is not None and billed(st.request)
                and _cut_short(st)):
            meter = (st.answering and st.answering.meter) or Meter(st.upstream_api or "openai", st.stream)
            usage = meter.estimate(st.request.body if st.request is not None else None)
            st.charge = self._accounting.charge(st.provider, st.upstream_model, usage, estimated=True)
        settle_budgets(st)


def settle_budgets(st: StreamState, before_answer: bool = False) -> None:
    """Once per request: its reservations become its charge (a semantic lookup's embedding call
    included), or are released without one. A request refused before any provider was called
    settles ``before_answer``: a 413 followed at once by a smaller retry must not meet a 429."""
    admission = st.take_admission()
    if admission is not None:
        st.effects.append(Settle(admission, with_embedding(st.charge, st.embedding_charge), before_answer))


def _cut_short(st: StreamState) -> bool:
    """Whether a routed request that got no usage may have cost something at the provider."""
    if st.answering is not None and st.answering.meter is not None:
        return True  # a 200 whose body never ended
    if not st.response_status:
        return True  # no answer yet: the provider had the prompt when the client left
    if st.response_details == "via_upstream":
        return False  # the provider's own error: not billed
    # Envoy's reply after the provider had the request (reset, timeout) may follow billed work;
    # not after a connect failure or Envoy's own refusal.
    return classify(st.response_status, st.response_details) in (FailureKind.RESET, FailureKind.TIMEOUT)
