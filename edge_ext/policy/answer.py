"""The response half of the policy: who answered, what the client gets, what it cost (also when
the answer is cut short).

Pure like the rest of the policy: the servicer hands it the response headers (with Envoy's
code details and, after an in-flight failover, who served the request after how many attempts)
and each body chunk it asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_ext.policy.accounting import Accounting, Meter, with_embedding
from edge_ext.policy.budgeting import BudgetStep
from edge_ext.policy.caching import CacheStep
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Mode, ResponseMode
from edge_ext.policy.failover import settle
from edge_ext.policy.state import StreamState
from edge_ext.routing.failures import FailureKind, classify
from edge_ext.routing.router import Router


class AnswerStep:
    def __init__(self, router: Router, cache: CacheStep, clock: Callable[[], float], wall: Callable[[], float],
                 latency: Any, accounting: Accounting | None, budgets: BudgetStep | None,
                 on_cache: Callable[[str, int], None], semantic: Any = None):
        self._router, self._cache, self._clock, self._wall = router, cache, clock, wall
        self._semantic = semantic
        self._latency, self._accounting, self._budgets, self._on_cache = latency, accounting, budgets, on_cache

    def on_headers(self, st: StreamState, status: int, headers: dict[str, str], details: str = "via_upstream",
                            served: str = "", attempts: int = 1) -> Decision:
        st.response_status, st.response_details = status, details
        from_upstream = details == "via_upstream"
        failed_over = False
        if st.breaker_pending:
            st.breaker_pending = False
            failed_over = settle(self._router, st, served, attempts, int(self._wall()))
            self._router.report(st.provider, status, details, headers.get("retry-after"))
            # After a failover the time includes the failed attempts: not this provider's latency.
            if from_upstream and self._latency is not None and not failed_over:
                self._latency.observe(st.provider, self._clock() - st.routed_at)
        if not from_upstream:
            # Envoy's own local reply (upstream unreachable, reset, timeout): already rendered in
            # the caller's shape by local_reply_config; nothing to translate.
            st.codec = None
        if status != 200 or not from_upstream:
            st.recorder = None  # only complete successes are stored
        elif self._accounting is not None and st.upstream_api:
            st.meter = Meter(st.upstream_api, st.stream)
        mode = st.codec.mode(status) if st.codec else ResponseMode.NONE
        if (st.recorder is not None or st.meter is not None) and mode is ResponseMode.NONE:
            mode = ResponseMode.STREAMED if st.stream else ResponseMode.BUFFERED
        st.response_mode = mode
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
        st.response_bytes += len(chunk)
        out = st.codec.transform(st.response_status, chunk, end_of_stream) if st.codec else None
        if st.recorder is not None:
            # Same API: record what the provider sent (with the usage we asked for on the
            # client's behalf); translated: record what the client gets, in its shape.
            st.recorder.feed(chunk if out is None or st.same_api else out)
            if end_of_stream:
                entry = self._cache.store(st.cache_key, st.recorder, st.provider, st.cache_ttl)
                self._on_cache("stored", len(entry.body) if entry else 0)
                st.recorder = None
                if self._semantic is not None:
                    self._semantic.remember(st, entry)
                self._cache.finish(st, entry)
        # Headers were sent to us and are held until this reply when BUFFERED: length, status
        # and cost headers are ours to set. STREAMED headers are long gone.
        buffered = st.response_mode is ResponseMode.BUFFERED
        set_headers: list[tuple[str, str]] = []
        metadata: tuple[tuple[str, str], ...] = ()
        if st.meter is not None:
            st.meter.feed(chunk)
            if end_of_stream:
                meter, st.meter = st.meter, None
                usage = meter.usage()
                estimated = usage is None
                if estimated:
                    usage = meter.estimate(st.request.body if st.request is not None else None)
                charge = st.charge = self._accounting.charge(st.provider, st.upstream_model, usage, estimated)
                metadata = charge.metadata()
                # Now, not when Envoy closes the stream: the client may send its next request
                # as soon as it has this answer.
                self._settle(st)
                if buffered:
                    set_headers.extend(charge.headers())
        if out is not None and buffered:
            set_headers.append(("content-length", str(len(out))))
            override = getattr(st.codec, "status_override", None)
            if override:
                set_headers.append((":status", str(override)))
        if out is None and not set_headers and not metadata:
            return CONTINUE
        return Continue(set_headers=tuple(set_headers), body=out, metadata=metadata)

    def on_stream_end(self, st: StreamState) -> None:
        """An answer cut short (client gone, provider or Envoy reset) is charged what it delivered,
        estimated; then the request's reservations are settled to its charge, or released."""
        if st.handed_over:
            return  # answered in 2 messages: its outcome settles it (edge_ext.policy.outcome)
        if st.charge is None and st.routed_at and self._accounting is not None and _cut_short(st):
            meter, st.meter = st.meter or Meter(st.upstream_api or "openai", st.stream), None
            usage = meter.estimate(st.request.body if st.request is not None else None)
            st.charge = self._accounting.charge(st.provider, st.upstream_model, usage, estimated=True)
        self._settle(st)

    def _settle(self, st: StreamState) -> None:
        """Once per request: its reservations become its charge, or are released without one."""
        if st.admission is not None and self._budgets is not None:
            admission, st.admission = st.admission, None
            self._budgets.settle(admission, with_embedding(st.charge, st.embedding_charge))


def _cut_short(st: StreamState) -> bool:
    """Whether a routed request that got no usage may have cost something at the provider."""
    if st.meter is not None:
        return True  # a 200 whose body never ended
    if not st.response_status:
        return True  # no answer yet: the provider had the prompt when the client left
    if st.response_details == "via_upstream":
        return False  # the provider's own error: not billed
    # Envoy's reply after the provider had the request (reset, timeout) may follow billed work;
    # not after a connect failure or Envoy's own refusal.
    return classify(st.response_status, st.response_details) in (FailureKind.RESET, FailureKind.TIMEOUT)
