"""Pick the provider for a model: the group's strategy orders the candidates, breakers filter.

Outcomes come back through ``report`` (status and Envoy's response code details), so a provider
that fails is skipped by every worker sharing the breaker store.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_ext.config.models import Config, Provider
from edge_ext.errors import InvalidRequest, ModelNotFound, ProviderKeyMissing, ProviderUnavailable
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.failures import FailureKind, classify
from edge_ext.routing.latency import NO_LATENCY, LatencyView
from edge_ext.routing.plan import cluster_for
from edge_ext.routing.breaker_store import BreakerStore, StoreBreaker
from edge_ext.routing.ratelimits import (
    NO_LIMITS, UNKNOWN, LimitRule, LimitsSink, LimitsView, ProviderLimits, Standing, Verdict, arrange, parse,
)
from edge_ext.routing.strategies import Candidate, RouteContext, create
from edge_ext.routing.table import ModelTable


@dataclass(frozen=True, slots=True)
class Chosen:
    provider: Provider
    upstream_model: str
    api_key: str
    # The providers this request may try, in order (edge_ext.routing.plan), and the cluster
    # that tries them.
    plan: tuple[str, ...] = ()
    cluster: str = ""
    # The model group a refusal is retried on (the plan's last provider serves it); "" for none.
    refusal_fallback: str = ""


class Router:
    def __init__(self, config: Config, keys: dict[str, str | None], breakers: BreakerStore,
                 latency: LatencyView = NO_LATENCY, rng: Any = None, prices: Callable[[str], Any] | None = None,
                 limits: LimitsView | None = None):
        self._table = ModelTable(config)
        self._keys = keys
        self._breakers = {p.name: StoreBreaker(breakers, p.name) for p in config.providers}
        self._store = breakers
        self._latency = latency
        self._rng = rng or random.Random()
        routing = config.routing
        rate = routing.rate_limits
        # The providers' own rate-limit budgets (their answers' headers), shared like latency.
        self._limits: LimitsView = (limits if limits is not None else NO_LIMITS) if rate.enabled else NO_LIMITS
        self._rule = LimitRule(rate.low_fraction, rate.max_hold_s)
        options = {"least_latency": {"epsilon": routing.least_latency_epsilon}}
        self._strategies = {
            model: create(name, **options.get(name, {}))
            for model in self._table.models()
            for name in [routing.models.get(model, routing.strategy)]
        }
        self._candidates = {
            model: tuple(_candidate(t.provider, t.upstream_model, prices) for t in self._table.targets(model))
            for model in self._table.models()
        }
        self._providers = {p.name: p for p in config.providers}
        self._prices = prices
        self._upstream_models = {(model, t.provider.name): t.upstream_model
                                 for model in self._table.models() for t in self._table.targets(model)}
        self._max_attempts = routing.max_attempts
        # A retry like any other: off with in-flight failover (max_attempts 1, the Istio render).
        self._refusal_fallback = dict(routing.refusal_fallback) if routing.max_attempts > 1 else {}
        self._output_limits = {(model, c.provider): self._limit_of(c.upstream_model)
                               for model, candidates in self._candidates.items() for c in candidates}
        self._clusters = {p.name: p.cluster for p in config.providers}
        self._picks: dict[tuple[str, str, tuple[str, ...], str, str], Chosen] = {}
        # Whether a provider needs a key to be picked (config); the keys themselves are looked up.
        self._needs_key = {p.name: bool(p.api_key_env or p.api_key_file) for p in config.providers}
        # The context of every strategy but cost_optimized: nothing in it depends on the request.
        self._plain_context = RouteContext(0, None, self._rng, self._latency)

    def _limit_of(self, upstream_model: str) -> int | None:
        price = self._prices(upstream_model) if self._prices else None
        return price.max_output_tokens if price is not None else None

    def output_limit(self, model: str) -> int | None:
        """The most output tokens any provider of the public ``model`` produces; None: no known
        limit. Checked before ``pick`` so a refusal never holds a breaker's probe slot."""
        most = None
        for c in self._candidates.get(model, ()):
            if self._has_key(c.provider):
                limit = self._output_limits[(model, c.provider)]
                if limit is None:
                    return None
                most = limit if most is None else max(most, limit)
        return most

    def _fits(self, model: str, provider: str, output: int | None) -> bool:
        limit = self._output_limits.get((model, provider))
        return output is None or limit is None or output <= limit

    def models(self) -> tuple[str, ...]:
        return self._table.models()

    def serves(self, model: str, accepts: Callable[[Provider], bool]) -> bool | None:
        """Whether a provider of the public ``model`` is one ``accepts`` takes; None: no such model."""
        candidates = self._candidates.get(model)
        if not candidates:
            return None
        return any(accepts(self._providers[c.provider]) for c in candidates)

    def pick(self, model: str, body: dict | None = None, output: int | None = None,
             accepts: Callable[[Provider], bool] | None = None) -> Chosen:
        """The provider for one request; in half-open the pick holds that breaker's probe slot
        until ``report`` or ``release``. ``output``: the output tokens the request asks for;
        providers whose model produces fewer are not candidates. ``accepts``: whether a provider
        can answer the request at all (an embedding goes to OpenAI-API providers, the Responses
        API to providers that speak it); those that cannot are neither picked nor planned."""
        candidates = self._candidates.get(model)
        if not candidates:
            raise ModelNotFound(f"The model '{model}' does not exist or is not served here", param="model")
        if accepts is not None:
            candidates = tuple(c for c in candidates if accepts(self._providers[c.provider]))
            if not candidates:
                raise InvalidRequest(f"no provider serving '{model}' answers this endpoint, and it is not "
                                     "translated for the others", param="model")
        needs_key, keys = self._needs_key, self._keys
        keyed = []
        for c in candidates:  # _has_key, inline: a loop instead of a frame per candidate
            if not needs_key[c.provider] or keys.get(c.provider):
                keyed.append(c)
        if not keyed:
            raise ProviderKeyMissing(f"no provider serving '{model}' has an API key configured")
        if output is not None:
            keyed = [c for c in keyed if self._fits(model, c.provider, output)]
            if not keyed:
                raise InvalidRequest(f"the request asks for {output} output tokens; '{model}' produces at most "
                                     f"{self.output_limit(model)}")
        strategy = self._strategies[model]
        ctx = self._plain_context
        if strategy.name == "cost_optimized" and body is not None:
            # Only this strategy needs the request's size; the walk is not free.
            from edge_ext.cost.calc import estimate_input_tokens, requested_output_tokens

            ctx = RouteContext(estimate_input_tokens(body), requested_output_tokens(body), self._rng, self._latency)
        ordered = strategy.order(keyed, ctx) if len(keyed) > 1 else keyed
        now = self._store.now()
        verdicts, steering = {}, False
        for c in ordered:
            verdicts[c.provider] = verdict = self.verdict(c.provider, now)
            steering = steering or verdict.standing in _STEERING
        if steering:
            # Exhausted providers are skipped like open breakers; low ones go after the rest.
            ordered, _ = arrange(ordered, [verdicts[c.provider] for c in ordered])
        for index, candidate in enumerate(ordered):
            if self._breakers[candidate.provider].allow():
                provider = self._providers[candidate.provider]
                fallback = self._refusal_fallback.get(model, "")
                target = self._refusal_target(fallback, provider.name, ctx, now) if fallback else None
                # With a refusal fallback the one other attempt goes to that group (docs/configuration.md).
                plan = (provider.name, target) if target else self._plan(provider.name, ordered[index + 1:])
                return self._chosen(provider, candidate.upstream_model, plan, fallback if target else "")
        # The soonest any provider serves again: its breaker's open time, its exhausted budget's reset.
        retry = min(max(self._breakers[c.provider].open_until, _blocked_until(verdicts[c.provider]))
                    for c in keyed) - now
        raise ProviderUnavailable(
            f"every provider serving '{model}' is failing or out of its rate limit; retry later",
            headers=(("retry-after", str(max(1, math.ceil(retry)))),),
        )

    def _chosen(self, provider: Provider, upstream_model: str, plan: tuple[str, ...], fallback: str) -> Chosen:
        """The pick as a value; equal picks are one object (a frozen dataclass costs a few
        microseconds to build, more than the rest of a single-candidate pick)."""
        api_key = self.api_key(provider.name)
        key = (provider.name, upstream_model, plan, fallback, api_key)
        chosen = self._picks.get(key)
        if chosen is None:
            if len(self._picks) >= _MAX_PICKS:
                self._picks.clear()  # only if keys keep changing: picks are few otherwise
            chosen = self._picks[key] = Chosen(provider, upstream_model, api_key, plan,
                                               cluster_for(plan, self._clusters[provider.name]), fallback)
        return chosen

    def _refusal_target(self, fallback: str, first: str, ctx: RouteContext, now: float) -> str | None:
        """The provider a refusal of ``first`` is retried on: the fallback group's first choice
        among closed breakers with rate-limit room; None when there is none."""
        keyed = [c for c in self._candidates.get(fallback, ()) if self._has_key(c.provider) and c.provider != first]
        for candidate in self._strategies[fallback].order(keyed, ctx):
            name = candidate.provider
            if (self._breakers[name].state is BreakerState.CLOSED
                    and self.verdict(name, now).standing is not Standing.EXHAUSTED):
                return name
        return None

    def refusal_fallback(self, model: str) -> str:
        return self._refusal_fallback.get(model, "")

    def attempt_model(self, model: str, provider: str) -> tuple[str, str] | None:
        """(public model, upstream model) a retry of a ``model`` request sends to ``provider``:
        its own group's, or its refusal fallback group's; None when it serves neither."""
        for public in (model, self._refusal_fallback.get(model, "")):
            upstream = self._upstream_models.get((public, provider))
            if upstream is not None:
                return public, upstream
        return None

    def verdict(self, provider: str, now: float | None = None) -> Verdict:
        """What the provider's last reported rate limits make of it now (wall clock)."""
        limits = self._limits.limits(provider)
        if limits is None:
            return UNKNOWN
        return self._rule.judge(limits, self._store.now() if now is None else now)

    def reported_limits(self, provider: str) -> ProviderLimits | None:
        return self._limits.limits(provider)

    def observe_limits(self, provider: str, headers: Mapping[str, str]) -> None:
        """An answer's rate-limit headers (lower-case names), if it carried any."""
        if self._limits is NO_LIMITS or provider not in self._providers:
            return
        limits = parse(headers, self._store.now())
        if limits is not None:
            sink: LimitsSink = self._limits  # type: ignore[assignment]
            sink.observe(provider, limits)

    def _plan(self, first: str, rest: list[Candidate]) -> tuple[str, ...]:
        """The first choice, then the next ones in the strategy's order (all keyed already)."""
        if self._max_attempts < 2 or not rest:
            return (first,)
        # Only closed breakers take fallback attempts: a half-open provider is probed as a first
        # choice, where its probe slot is accounted for.
        fallbacks = [c.provider for c in rest if self._breakers[c.provider].state is BreakerState.CLOSED]
        return (first, *fallbacks[: self._max_attempts - 1])

    def provider(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def api_key(self, name: str) -> str:
        return self._keys.get(name) or ""

    def upstream_model(self, model: str, provider: str) -> str | None:
        """The name ``provider`` knows the public ``model`` by; None when it does not serve it."""
        return self._upstream_models.get((model, provider))

    def report_retried(self, provider: str) -> None:
        """An earlier attempt of a failed-over request: Envoy retried it, so it failed."""
        breaker = self._breakers.get(provider)
        if breaker is not None:
            breaker.on_failure(FailureKind.RETRIED)

    def report(self, provider: str, status: int, code_details: str, retry_after: str | None, flags: str = "") -> None:
        breaker = self._breakers.get(provider)
        if breaker is None:
            return
        kind = classify(status, code_details, flags)
        if kind is None:
            breaker.on_success()
        else:
            breaker.on_failure(kind, _seconds(retry_after))

    def release(self, provider: str) -> None:
        """The request ended without a verdict (client gone): give back a half-open probe slot."""
        breaker = self._breakers.get(provider)
        if breaker is not None:
            breaker.release()

    def states(self) -> dict[str, BreakerState]:
        return {name: b.state for name, b in self._breakers.items()}

    def force(self, provider: str, state: BreakerState) -> None:
        self._breakers[provider].force(state)

    def _has_key(self, name: str) -> bool:
        return not self._needs_key[name] or bool(self._keys.get(name))


_STEERING = (Standing.LOW, Standing.EXHAUSTED)
_MAX_PICKS = 1024


def _blocked_until(verdict: Verdict) -> float:
    return verdict.until if verdict.standing is Standing.EXHAUSTED else 0.0


def _candidate(provider: Provider, upstream_model: str, prices) -> Candidate:
    price = prices(upstream_model) if prices else None
    return Candidate(provider.name, upstream_model, provider.weight, provider.priority,
                     price.input if price else None, price.output if price else None)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
