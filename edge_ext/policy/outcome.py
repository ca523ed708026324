"""What the response phases do, for a request answered in 2 ext_proc messages: applied when its
outcome arrives, after the answer, off the request path.

The processor ended such a request's stream after its body (``Continue.last``); Envoy then
reports how it went through its gRPC access log, in batches (edge_ext.extproc.access_log turns
each entry into an ``Outcome``). Any worker may receive it: everything needed travels in the
request's edge_ext metadata (provider, model, plan, reservations). Pure like the rest of the
policy; the metrics are the servicer's, and the settlement is left as an effect for the driver.

Bounds (docs/envoy.md): an outcome arrives one flush interval (``accounting.outcome_flush_ms``)
after the answer, plus the worker's own queue. Outcomes of one batch (one access log message)
are applied together and in order: each is counted on its breaker, one by one, as the response
phase would have counted it; their latency samples are folded, in the same order, once the
batch is done (one lock of the shared averages per batch, the same averages); their
settlements leave as effects the driver writes together. An outcome lost on the way
(a worker killed with entries in flight) settles nothing: its budget holds are due holds, charged
as estimated when they expire (edge_ext.cost.ledger_api), its tokens-per-minute reservation stays
counted, and a half-open probe slot it held is freed by the breaker's own probe timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from edge_ext.apis.base import ClientAPI
from edge_ext.apis.by_name import CLIENT_APIS
from edge_ext.apis.openai import OPENAI
from edge_ext.apis.operations import billed
from edge_ext.auth import Caller
from edge_ext.cost.admitted import METADATA_GROUPS, METADATA_KEYS, Admission
from edge_ext.cost.calc import estimate_input_tokens
from edge_ext.message import ChatRequest
from edge_ext.policy.accounting import Accounting, Charge
from edge_ext.policy.failover import served_by, tried_before
from edge_ext.policy.needs import Settle
from edge_ext.policy.response import Passthrough
from edge_ext.policy.state import Phase, StreamState
from edge_ext.providers.registry import adapter_for
from edge_ext.routing.failures import FailureKind, classify
from edge_ext.routing.latency import LatencySink
from edge_ext.routing.router import Router
from edge_ext.usage import READERS, Usage

log = logging.getLogger("edge_ext.outcomes")

_EMPTY: Mapping = MappingProxyType({})
# The request metadata an outcome is settled from: what ``hand_over`` and routing wrote, as this
# module and the admission read it (the access log reads only these keys).
ROUTE_KEYS = ("outcome", "provider", "model", "plan", "api", "upstream_model", "key_id", "tenant", "est_in", "billed",
              "refused", "refusal_fallback", *METADATA_KEYS)
# Keys always written together (the refusal and its fallback group, an admission's holds and its
# window): the rest of a group is read only where its first key is (edge_ext.extproc.access_log).
ROUTE_WITH = (("refused", ("refusal_fallback",)), *METADATA_GROUPS)
ROUTE_FIRST = tuple(key for key in ROUTE_KEYS if not any(key in rest for _, rest in ROUTE_WITH))


class Outcome(NamedTuple):
    """One finished request as Envoy logged it. Times in seconds; None where Envoy had none.
    A tuple: a batch makes one per entry, and a tuple is the cheapest record to build."""

    request_id: str
    status: int  # 0: no response was sent (client gone before it)
    details: str  # Envoy's response code details: via_upstream, or why Envoy answered
    flags: str = ""  # Envoy's short response flags (UF,URX...), "" for none
    served: str = ""  # the provider whose endpoint answered (its endpoint metadata)
    attempts: int = 0  # upstream attempts; 0 when none was made
    upstream_ttfb_s: float | None = None  # the request's last byte received -> the answer's first byte
    duration_s: float | None = None  # first upstream byte sent -> last upstream byte received
    response_bytes: int = 0
    retry_after: str | None = None
    # The provider's rate-limit headers Envoy logged (edge_ext.routing.ratelimits.HEADERS).
    limits: Mapping[str, str] = _EMPTY
    # Envoy's extraction of the answer's usage (numbers), and the processor's own metadata.
    usage: Mapping[str, float] = _EMPTY
    route: Mapping[str, str] = _EMPTY


def usage_of(api: str, extracted: Mapping[str, float]) -> Usage | None:
    """The answer's usage in ``api``'s terms from Envoy's extraction; None when it had none, or
    a figure past any plausible count (edge_ext.usage.MAX_REPORTED_TOKENS): estimated instead."""
    reader = READERS[api]
    if not extracted or extracted.keys().isdisjoint(reader.paths):
        return None
    return reader.extracted(extracted)


def answer_unseen(st: StreamState, plan: tuple[str, ...], speaks: Callable[[tuple[str, ...], str], bool]) -> bool:
    """Whether a routed request's answer needs no response phase: passed through as it comes
    (every provider of its plan speaks the client's API, not streamed, not stored). ``speaks``
    is ``plan_speaks`` for the policy's router, which the policy keeps a cache of."""
    if (st.flight is not None and st.flight.recorder is not None) or not isinstance(st.routed.codec, Passthrough):
        return False
    return speaks(plan, st.api.name)


def plan_speaks(router: Router, plan: tuple[str, ...], api: str) -> bool:
    """Whether every provider of ``plan`` the router knows (at least one) answers in ``api``: a
    function of the router's providers (fixed for its life), the plan and the API."""
    providers = [p for name in plan if (p := router.provider(name)) is not None]
    return bool(providers) and all(api in adapter_for(p.kind).wire_apis for p in providers)


def hand_over(st: StreamState, request: ChatRequest, accounting: bool) -> tuple[tuple[str, str], ...]:
    """The stream ends with the body reply: the breaker verdict and the settlement of the
    reservations come with the outcome, so what they need travels in the request's metadata.
    The stream keeps them until ``handed_over``: a reply that never left settles at stream end."""
    handed = [("outcome", "1"), ("api", st.api.name), ("upstream_model", st.upstream_model)]
    if not billed(request):
        handed.append(("billed", "0"))  # a token count: never charged, even as estimated
    elif accounting:
        # Worked out when admitted, unless the body changed since (personal data redacted).
        known = st.admission.input_tokens if st.admission is not None and not request.rewritten else None
        handed.append(("est_in", str(known if known is not None else estimate_input_tokens(request.body))))
    return (*handed, *(st.admission.metadata() if st.admission is not None else ()))


def handed_over(st: StreamState) -> None:
    """The body reply of a 2-message request was sent: its outcome settles it from now on."""
    st.routed.take_verdict()
    st.take_admission()
    st.enter(Phase.HANDED_OVER)


def _billed_without_usage(outcome: Outcome) -> bool:
    """Whether a request that reported no usage may still have cost something (as
    edge_ext.policy.answer judges an answer cut short)."""
    if not outcome.status:
        return bool(outcome.attempts)  # the provider had the prompt when the client left
    if outcome.details == "via_upstream":
        return outcome.status == 200  # a complete answer without usage: estimated
    return classify(outcome.status, outcome.details, outcome.flags) in (FailureKind.RESET, FailureKind.TIMEOUT)


class Settled:
    """A 2-message request as its response phases would have left it: the record metrics,
    the driver and callers read, under ``StreamState``'s names. Built once per outcome: a
    fraction of a whole ``StreamState``."""

    __slots__ = ("request_id", "api", "model", "provider", "upstream_api", "upstream_model", "caller", "retried",
                 "refused", "refusal_fallback", "response_status", "response_details", "attempts", "charge", "effects",
                 "routed_at")
    outcome, phase, same_api = "routed", Phase.ENDED, True

    def __init__(self, request_id: str, api: ClientAPI, model: str, provider: str, upstream_api: str,
                 upstream_model: str, caller: Caller, retried: tuple[str, ...], status: int, details: str, attempts: int):
        self.request_id, self.api, self.model, self.provider = request_id, api, model, provider
        self.upstream_api, self.upstream_model, self.caller, self.retried = upstream_api, upstream_model, caller, retried
        self.response_status, self.response_details, self.attempts = status, details, attempts
        self.refused = self.refusal_fallback = ""
        self.charge: Charge | None = None
        self.effects: list = []
        self.routed_at = 0.0

    def take_effects(self) -> list:
        effects, self.effects = self.effects, []
        return effects


# Bounds of the step's lookups: keyed by names from the config and the processor's own metadata.
_KEPT = 1024


class OutcomeStep:
    def __init__(self, router: Router, latency: LatencySink | None, accounting: Accounting | None,
                 wall: Callable[[], float]):
        self._router, self._latency, self._accounting = router, latency, accounting
        self._wall = wall
        # Per (served provider, client API, model, key id, tenant): ``_know``. Static for the
        # router's life.
        self._known: dict[tuple[str, str, str, str, str], tuple[ClientAPI, str, str | None, Caller]] = {}

    def apply(self, outcome: Outcome) -> Settled | None:
        """Breakers, latency, failover, cost and budgets for one outcome; returns the request as
        its response phases would have left it (for metrics; its effects hold the settlement),
        or None when it is not ours."""
        return self.apply_all((outcome,))[0]

    def apply_all(self, outcomes: Sequence[Outcome]) -> list[Settled | None]:
        """``apply`` for each outcome of one batch, in order. The breakers see every outcome as
        it comes; the latency samples are folded once the batch is done, in order (nothing reads
        the averages in between: the batch runs without a pause of the event loop), and so are
        the charges' metrics. An outcome that fails is logged and left out (None), never the
        rest of its batch."""
        samples: list[tuple[str, float]] = []
        charges: list[tuple[str, str, Charge]] = []
        done: list[Settled | None] = []
        for outcome in outcomes:
            try:
                done.append(self._apply(outcome, samples, charges))
            except Exception as exc:  # noqa: BLE001 - one bad entry must not drop the rest of the batch
                log.error("outcome of request %s not applied: %s", outcome.request_id or "-", type(exc).__name__)
                done.append(None)
        if samples and self._latency is not None:
            self._latency.observe_all(samples)
        if charges:
            self._accounting.charged(charges)
        return done

    def _apply(self, outcome: Outcome, samples: list[tuple[str, float]],
               charges: list[tuple[str, str, Charge]]) -> Settled | None:
        route = outcome.route
        first = route.get("provider", "")
        if not first or route.get("outcome") != "1":
            return None
        plan = route.get("plan")
        plan = (tuple(filter(None, plan.split(","))) if plan else ()) or (first,)
        status, details = outcome.status, outcome.details
        if outcome.served == first and first in plan:
            served, retried, refused = first, (), ""  # the first choice answered: most outcomes
        else:
            served = served_by(plan, first, outcome.served, outcome.attempts)
            retried = tried_before(plan, first, served)
            refused = route.get("refusal_fallback", "") if route.get("refused") == first and retried == (first,) else ""
            if refused:
                retried = ()  # a refusal retried on the fallback group: an answer, not a failure
        router = self._router
        for name in retried:
            router.report_retried(name)
        if status:
            router.report(served, status, details, outcome.retry_after, outcome.flags)
            if outcome.limits and details == "via_upstream":
                router.observe_limits(served, outcome.limits)
        else:
            router.release(served)  # no verdict: a half-open probe slot is given back
        if not retried and outcome.upstream_ttfb_s is not None and details == "via_upstream":
            samples.append((served, outcome.upstream_ttfb_s))
        st = self._settled(outcome, served, retried, route)
        if refused:
            st.refused, st.refusal_fallback = first, refused
        if self._accounting is not None and route.get("billed") != "0":
            charge = st.charge = self._charge(outcome, st)
            if charge is not None:
                charges.append((served, st.upstream_model, charge))
        if "hold" in route or "tpm" in route:
            admission = Admission.from_metadata(route)
            if admission is not None:
                st.effects.append(Settle(admission, st.charge))
        return st

    def _settled(self, outcome: Outcome, served: str, retried: tuple[str, ...], route: Mapping[str, str]) -> Settled:
        get = route.get
        model = get("model", "")
        key = (served, get("api", ""), model, get("key_id", ""), get("tenant", "default"))
        known = self._known.get(key)
        if known is None:
            known = self._know(key)
        api, upstream_api, upstream_model, caller = known
        return Settled(outcome.request_id, api, model, served, upstream_api,
                       upstream_model if upstream_model is not None else get("upstream_model", model), caller, retried,
                       outcome.status, outcome.details, outcome.attempts if outcome.attempts > 1 else 1)

    def _know(self, key: tuple[str, str, str, str, str]) -> tuple[ClientAPI, str, str | None, Caller]:
        """What an outcome's request was, from its served provider, API, model, key id and tenant:
        the client API, the API and model the provider was asked in (None: the metadata's), the caller."""
        served, api_name, model, key_id, tenant = key
        if len(self._known) >= _KEPT:
            self._known.clear()
        api = CLIENT_APIS.get(api_name, OPENAI)
        provider = self._router.provider(served)
        adapter = adapter_for(provider.kind) if provider is not None else None
        found = self._router.attempt_model(model, served)
        known = self._known[key] = (api, api.name if adapter is None or api.name in adapter.wire_apis else adapter.wire_api,
                                    found[1] if found else None, Caller(key_id, tenant, frozenset(), None))
        return known

    def _charge(self, outcome: Outcome, st: Settled) -> Charge | None:
        usage = usage_of(st.upstream_api, outcome.usage) if outcome.status == 200 else None
        if usage is not None:
            return self._accounting.price(st.upstream_model, usage)
        if not _billed_without_usage(outcome):
            return None
        # The prompt as estimated at admission, the answer's bytes as its text: the estimate an
        # answer cut short gets (edge_ext.cost.estimate), without the bodies.
        prompt = int(outcome.route.get("est_in", "0") or 0)
        estimate = Usage(input_tokens=prompt, output_tokens=-(-outcome.response_bytes // 4) if outcome.status == 200 else 0)
        return self._accounting.price(st.upstream_model, estimate, estimated=True)
