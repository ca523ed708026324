"""The router-level side of in-flight failover: how Envoy may retry, who finally answered, and
what that changes.

The request was shaped for the first provider of its plan. When Envoy retried it on the next
ones, the response phase learns from Envoy (the answering endpoint's metadata and the attempt
count) who served it; every provider tried before that one failed, since Envoy retries only on
provider failures. The answer is then read in the served provider's API and priced at its model.
"""

from __future__ import annotations

from edge_ext.errors import EdgeError
from edge_ext.policy.response import codec_for
from edge_ext.policy.shaping import body_for
from edge_ext.policy.state import StreamState
from edge_ext.routing.router import Chosen, Router


def retry_headers(target: Chosen) -> tuple[tuple[str, str], ...]:
    """How Envoy may retry: on the next providers of the plan, each bounded by the first's timeout."""
    timeout_ms = int(target.provider.timeout_s * 1000)
    # Always sent: the route's own retry count is 0, and this header is what raises it.
    retries = ("x-envoy-max-retries", str(len(target.plan) - 1))
    if len(target.plan) < 2:
        # The provider's own timeout; the route's is only the largest of all.
        return (("x-envoy-upstream-rq-timeout-ms", str(timeout_ms)), retries)
    return (("x-envoy-upstream-rq-timeout-ms", str(timeout_ms * len(target.plan))),
            ("x-envoy-upstream-rq-per-try-timeout-ms", str(timeout_ms)), retries)


def served_by(plan: tuple[str, ...], first: str, provider: str, attempts: int) -> str:
    """The provider that answered; the plan position of the last attempt when Envoy did not say."""
    if provider in plan:
        return provider
    if 1 <= attempts <= len(plan):
        return plan[attempts - 1]
    return first


def tried_before(plan: tuple[str, ...], first: str, served: str) -> tuple[str, ...]:
    """The providers Envoy tried, and that failed, before ``served`` answered."""
    if served == first:
        return ()
    return plan[: plan.index(served)] if served in plan else (first,)


def settle(router: Router, st: StreamState, provider: str, attempts: int, now: int, refused: str = "") -> bool:
    """Records who answered; True when it is not the first provider (the request failed over).
    ``refused``: the refusal fallback group, when the first provider's refusal was retried on
    it (the attempt filter said so): an answer, not a failure of that provider."""
    served = served_by(st.routed.plan, st.provider, provider, attempts)
    st.attempts = max(attempts, 1)
    if served == st.provider:
        return False
    tried = tried_before(st.routed.plan, st.provider, served)
    if refused and tried == (st.provider,):
        st.refused, st.refusal_fallback = st.provider, refused
    else:
        st.retried = tried
        for name in st.retried:
            router.report_retried(name)
    _retarget(router, st, served, now)
    return True


def _retarget(router: Router, st: StreamState, name: str, now: int) -> None:
    provider = router.provider(name)
    found = router.attempt_model(st.model, name)
    upstream_model = found[1] if found else None
    st.provider = name
    if provider is None or upstream_model is None or st.request is None:
        return
    try:
        # What the served provider got is what the attempt filter derived from the first body;
        # the client's request, shaped again, tells whether usage was asked for on its behalf.
        shaped = body_for(st.request, provider, upstream_model)
    except EdgeError:
        # The attempt filter refused this request for that provider: its answer is already in
        # the client's shape.
        st.routed.codec = None
        return
    st.routed.codec = codec_for(st.request, shaped.wire_api, shaped.strip_usage, now)
    st.same_api = st.request.api == shaped.wire_api
    st.upstream_api, st.upstream_model = shaped.wire_api, upstream_model
