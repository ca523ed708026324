"""The response half of the policy: who answered, what the client gets, what it cost.

Pure like the rest of the policy: the servicer hands it the response headers (with Envoy's
code details and, after an in-flight failover, who served the request after how many attempts)
and each body chunk it asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_ext.policy.accounting import Accounting, Meter
from edge_ext.policy.budgeting import BudgetStep
from edge_ext.policy.caching import CacheStep
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Mode, ResponseMode
from edge_ext.policy.failover import settle
from edge_ext.policy.state import StreamState
from edge_ext.routing.router import Router


class AnswerStep:
    def __init__(self, router: Router, cache: CacheStep, clock: Callable[[], float], wall: Callable[[], float],
                 latency: Any, accounting: Accounting | None, budgets: BudgetStep | None,
                 on_cache: Callable[[str, int], None]):
        self._router, self._cache, self._clock, self._wall = router, cache, clock, wall
        self._latency, self._accounting, self._budgets, self._on_cache = latency, accounting, budgets, on_cache

    def on_headers(self, st: StreamState, status: int, headers: dict[str, str], details: str = "via_upstream",
                            served: str = "", attempts: int = 1) -> Decision:
        st.response_status = status
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
                self._cache.finish(st, entry)
        # Headers were sent to us and are held until this reply when BUFFERED: length, status
        # and cost headers are ours to set. STREAMED headers are long gone.
        buffered = st.response_mode is ResponseMode.BUFFERED
        set_headers: list[tuple[str, str]] = []
        metadata: tuple[tuple[str, str], ...] = ()
        if st.meter is not None:
            st.meter.feed(chunk)
            if end_of_stream:
                usage, st.meter = st.meter.usage(), None
                if usage is not None:
                    charge = st.charge = self._accounting.charge(st.provider, st.upstream_model, usage)
                    metadata = charge.metadata()
                    if self._budgets is not None:
                        self._budgets.record(st.caller, charge.cost.usd if charge.cost.priced else None, usage.total)
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
