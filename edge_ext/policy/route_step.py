"""A routed request's reply: the router's pick, the provider's shape, and what Envoy is told
(the cluster header, the provider's credential, path and body, the request's metadata), and, when
no response phase follows (the 2-message path), what its outcome will need.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

from edge_ext.message import ChatRequest, Headers
from edge_ext.policy.decisions import Continue
from edge_ext.policy.failover import retry_headers
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.outcome import answer_unseen, hand_over, plan_speaks
from edge_ext.policy.refusal import REFUSAL_WATCH, refusal_watch
from edge_ext.policy.response import codec_for
from edge_ext.policy.shaping import serving_filter, shape
from edge_ext.policy.state import Phase, Routed, StreamState
from edge_ext.policy.validation import ACCEPTS, authenticated, requested_output
from edge_ext.routing.router import Chosen, Router

# The header Envoy's route reads to pick the provider cluster (route.cluster_header).
CLUSTER_HEADER = "x-edge-cluster"


class RouteStep:
    """``fast_path``: a plain answer skips the response phases (its outcome settles it);
    ``accounting``: that outcome is charged, so the request carries its input estimate."""

    def __init__(self, router: Router, grants: AttemptGrants, clock: Callable[[], float], wall: Callable[[], float],
                 fast_path: bool, accounting: bool):
        self._router, self._grants = router, grants
        self._clock, self._wall = clock, wall
        self._fast_path, self._accounting = fast_path, accounting
        # Asked for every routed request; few plans and APIs. Kept per step, so a reload's new
        # router starts a new cache and the old one goes with the old policy.
        self._plan_speaks = lru_cache(maxsize=256)(partial(plan_speaks, router))
        self._retries: dict[tuple[str, int], Headers] = {}  # bounded: providers x plan lengths

    def chat(self, st: StreamState, request: ChatRequest) -> Continue:
        caller = authenticated(st)
        wanted = requested_output(request.body, request.api)
        target = self._router.pick(request.model, request.body, wanted[1] if wanted else None,
                                   ACCEPTS.get(request.operation) or serving_filter(request.api))
        provider = target.provider
        # From here the router awaits this request's verdict: whatever follows, a refusal
        # included, on_stream_end gives a half-open probe slot back.
        st.provider = provider.name
        st.routed = routed = Routed(target.plan, None)
        shaped = shape(request, provider, target.api_key, target.upstream_model, st.headers)
        body = shaped.body
        st.outcome, st.routed_at = "routed", self._clock()
        routed.codec = codec_for(request, body.wire_api, body.strip_usage, int(self._wall()))
        st.same_api = request.api == body.wire_api
        st.upstream_api, st.upstream_model = body.wire_api, target.upstream_model
        grant = self._grants.metadata(provider.name, request.model, target.plan) if len(target.plan) > 1 else ()
        watch = refusal_watch(target.refusal_fallback, request.stream)
        set_headers = ((CLUSTER_HEADER, target.cluster), *self._retry_headers(target), *shaped.set_headers, *watch)
        # A client's own watch header is on no allow-list: removed, unless ours replaces it.
        remove = tuple(h for h in shaped.remove_headers if h != REFUSAL_WATCH) if watch else shaped.remove_headers
        metadata = (("provider", st.provider), ("model", st.model), ("cache", st.cache_status or "off"),
                    ("tenant", caller.tenant), ("key_id", caller.key_id), *grant)
        if request.operation != "chat":
            # A failover attempt parses the body by it (edge_ext.policy.attempt).
            metadata += (("operation", request.operation),)
        last = self._fast_path and answer_unseen(st, target.plan, self._plan_speaks)
        if last:
            metadata += hand_over(st, request, self._accounting)
        st.enter(Phase.ROUTED)
        return Continue(
            set_headers=set_headers,
            remove_headers=remove,
            body=body.body,
            clear_route_cache=True,
            metadata=metadata,
            last=last,
        )

    def _retry_headers(self, target: Chosen) -> Headers:
        """failover.retry_headers, a function of the provider and the plan's length: kept."""
        key = (target.provider.name, len(target.plan))
        headers = self._retries.get(key)
        if headers is None:
            headers = self._retries[key] = retry_headers(target)
        return headers
