"""Prometheus metrics of one worker process.

Samples go to in-memory values (edge_ext.metric_values): the request path adds to floats and
list slots, nothing else. A background flush writes them to the supervisor's metrics directory
(edge_ext.metric_files), and the supervisor serves the sum of all workers on one endpoint, so a
scrape sees the instance, not a random worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_ext.metric_families import WorkerFamilies

_AUTH_FAILURES = frozenset({"missing_api_key", "invalid_api_key", "model_not_allowed"})
_BUDGET_REFUSALS = frozenset({"budget_exceeded", "tokens_per_minute_exceeded"})


class WorkerMetrics(WorkerFamilies):
    """The families (edge_ext.metric_families) and how each event of a request records in them."""

    def __init__(self) -> None:
        super().__init__()
        self._phase_children = {}

    def on_cache(self, result: str, stored_bytes: int) -> None:
        if result == "stored":
            if stored_bytes:
                self.cache_stores.inc()
                self.cache_stored_bytes.inc(stored_bytes)
        else:
            self.cache_lookups.labels(result=result).inc()

    def on_semantic(self, result: str, similarity: float | None) -> None:
        self.semantic_lookups.labels(result=result).inc()
        if similarity is not None:
            self.semantic_similarity.observe(similarity)

    def on_embedding(self, model: str, tenant: str, seconds: float, tokens: int, usd: float | None) -> None:
        self.embedding_seconds.observe(seconds)
        self.embedding_tokens.labels(model=model).inc(tokens)
        if usd is not None:
            self.embedding_cost_usd.labels(model=model, tenant=tenant).inc(usd)
            self.tenant_cost_usd.labels(tenant=tenant).inc(usd)

    def on_charge(self, provider: str, model: str, charge) -> None:
        u = charge.usage
        for kind, value in (("input", u.input_tokens + u.cached_input_tokens + u.cache_write_tokens),
                            ("output", u.output_tokens), ("cached_input", u.cached_input_tokens),
                            ("cache_write", u.cache_write_tokens), ("reasoning", u.reasoning_tokens)):
            if value or kind in ("input", "output"):
                self.token_usage.child((kind, provider, model)).observe(value)
        if charge.cost.priced:
            self.cost_usd.child((provider, model)).inc(float(charge.cost.usd))
        else:
            self.unpriced.child((model,)).inc()

    def on_charges(self, charges: Iterable[tuple[str, str, Any]]) -> None:
        """``on_charge`` for each (provider, model, charge) of a batch of outcomes: each series is
        looked up once per label set, each counter added to once. The same samples."""
        by_target: dict[tuple[str, str], list] = {}
        for provider, model, charge in charges:
            key = (provider, model)
            (by_target.get(key) or by_target.setdefault(key, [])).append(charge)
        for (provider, model), batch in by_target.items():
            inputs, outputs = self.token_usage.child(("input", provider, model)), self.token_usage.child(("output", provider, model))
            usd, unpriced = 0.0, 0
            for charge in batch:
                u = charge.usage
                cached, written, reasoning = u.cached_input_tokens, u.cache_write_tokens, u.reasoning_tokens
                inputs.observe(u.input_tokens + cached + written)
                outputs.observe(u.output_tokens)
                if cached:
                    self.token_usage.child(("cached_input", provider, model)).observe(cached)
                if written:
                    self.token_usage.child(("cache_write", provider, model)).observe(written)
                if reasoning:
                    self.token_usage.child(("reasoning", provider, model)).observe(reasoning)
                cost = charge.cost
                if cost.priced:
                    usd += float(cost.usd)
                else:
                    unpriced += 1
            if len(batch) > unpriced:  # at least one priced: its series exists, even at $0
                self.cost_usd.child((provider, model)).inc(usd)
            if unpriced:
                self.unpriced.child((model,)).inc(unpriced)

    def on_finish(self, st, now: float) -> None:
        """One request's figures once its stream ended (labels stay bounded: no ids, no keys).
        Every stream ends here: one request is written directly, without ``on_outcomes``'
        folding, which only pays for itself over a batch."""
        outcome = st.outcome or "none"
        if outcome in _AUTH_FAILURES:
            self.auth_failures.child((outcome,)).inc()
        elif outcome in _BUDGET_REFUSALS:
            self.budget_refusals.child((outcome,)).inc()
        routed_at = st.routed_at
        if not routed_at:
            return
        provider, retried = st.provider, st.retried
        for name in retried:
            self.attempts.child((name, "retried")).inc()
        if retried:
            self.failovers.child((retried[0], provider)).inc()
        if st.refused:
            self.attempts.child((st.refused, "refused")).inc()
            self.refusal_fallbacks.child((st.model, st.refusal_fallback)).inc()
        status = st.response_status
        if status:
            self.attempts.child((provider, "answered")).inc()
            self.responses.child((provider, f"{status // 100}xx")).inc()
            self.request_duration.child((provider, st.model)).observe(now - routed_at)
        if not st.same_api:
            self.translations.child((st.api.name, st.upstream_api)).inc()
        charge = st.charge
        if charge is not None:
            u, tenant = charge.usage, (st.caller.tenant,)
            tokens = u.prompt_tokens + u.output_tokens
            self.tenant_tokens.child(tenant).inc(tokens)
            if charge.estimated:
                self.estimated_tokens.child(tenant).inc(tokens)
            if charge.cost.priced:
                usd = float(charge.cost.usd)
                self.tenant_cost_usd.child(tenant).inc(usd)
                if charge.estimated:
                    self.estimated_cost_usd.child(tenant).inc(usd)

    def on_outcomes(self, finished: Iterable[tuple[Any, float | None, float]]) -> None:
        """``on_first_byte`` (when its time is not None) and ``on_finish`` for each (state, first
        byte, end) of a batch of outcomes (edge_ext.extproc.access_log), or of one stream. Requests
        that finished alike (the same labels on every series they touch) are folded first, one
        tuple each; then every counter is added to once per label set and every histogram's
        series looked up once. The same samples as one request at a time."""
        counts: dict[tuple, float] = {}
        observed: dict[tuple, list[float]] = {}
        # (provider, model, retried, refused, refusal fallback, status, translation, tenant,
        # estimated, priced) -> [requests, durations, tokens, usd, times to first byte]
        alike: dict[tuple, list] = {}
        for st, first_byte, now in finished:
            routed_at = st.routed_at
            outcome = st.outcome
            if outcome != "routed":
                outcome = outcome or "none"
                if outcome in _AUTH_FAILURES:
                    key = (self.auth_failures, (outcome,))
                    counts[key] = counts.get(key, 0.0) + 1
                elif outcome in _BUDGET_REFUSALS:
                    key = (self.budget_refusals, (outcome,))
                    counts[key] = counts.get(key, 0.0) + 1
            if not routed_at:
                continue
            status, charge = st.response_status, st.charge
            translation = None if st.same_api else (st.api.name, st.upstream_api)
            if charge is None:
                shape = (st.provider, st.model, st.retried, st.refused, st.refusal_fallback, status, translation, None,
                         False, False)
            else:
                cost = charge.cost
                shape = (st.provider, st.model, st.retried, st.refused, st.refusal_fallback, status, translation,
                         st.caller.tenant, charge.estimated, cost.priced)
            group = alike.get(shape)
            if group is None:
                group = alike[shape] = [0, [], 0, 0.0, []]
            group[0] += 1
            if first_byte is not None:
                group[4].append(first_byte - routed_at)
            if status:
                group[1].append(now - routed_at)
            if charge is not None:
                u = charge.usage
                group[2] += u.input_tokens + u.cached_input_tokens + u.cache_write_tokens + u.output_tokens
                if cost.priced:
                    group[3] += float(cost.usd)
        for shape, (n, durations, tokens, usd, first_bytes) in alike.items():
            provider, model, retried, refused, fallback, status, translation, tenant, estimated, priced = shape
            if first_bytes:
                key = (self.time_to_first_token, (provider, model))
                (observed.get(key) or observed.setdefault(key, [])).extend(first_bytes)
            for name in retried:
                key = (self.attempts, (name, "retried"))
                counts[key] = counts.get(key, 0.0) + n
            if retried:
                key = (self.failovers, (retried[0], provider))
                counts[key] = counts.get(key, 0.0) + n
            if refused:
                key = (self.attempts, (refused, "refused"))
                counts[key] = counts.get(key, 0.0) + n
                key = (self.refusal_fallbacks, (model, fallback))
                counts[key] = counts.get(key, 0.0) + n
            if status:
                key = (self.attempts, (provider, "answered"))
                counts[key] = counts.get(key, 0.0) + n
                key = (self.responses, (provider, f"{status // 100}xx"))
                counts[key] = counts.get(key, 0.0) + n
                key = (self.request_duration, (provider, model))
                (observed.get(key) or observed.setdefault(key, [])).extend(durations)
            if translation is not None:
                key = (self.translations, translation)
                counts[key] = counts.get(key, 0.0) + n
            if tenant is not None:
                key = (self.tenant_tokens, (tenant,))
                counts[key] = counts.get(key, 0.0) + tokens
                if estimated:
                    key = (self.estimated_tokens, (tenant,))
                    counts[key] = counts.get(key, 0.0) + tokens
                if priced:
                    key = (self.tenant_cost_usd, (tenant,))
                    counts[key] = counts.get(key, 0.0) + usd
                    if estimated:
                        key = (self.estimated_cost_usd, (tenant,))
                        counts[key] = counts.get(key, 0.0) + usd
        for (family, labels), amount in counts.items():
            family.child(labels).inc(amount)
        for (family, labels), samples in observed.items():
            series = family.child(labels)
            for sample in samples:
                series.observe(sample)

    def on_first_byte(self, st, now: float) -> None:
        if st.routed_at:
            self.time_to_first_token.labels(provider=st.provider, model=st.model).observe(now - st.routed_at)

    def on_saved(self, model: str, usd) -> None:
        self.saved_usd.labels(model=model).inc(float(usd))

    def on_breaker_transition(self, provider: str, old, new) -> None:
        self.breaker_transitions.labels(provider=provider, to=getattr(new, "value", str(new))).inc()

    def observe_phase(self, phase: str, seconds: float) -> None:
        child = self._phase_children.get(phase)
        if child is None:
            child = self._phase_children[phase] = self.phase_seconds.labels(phase=phase)
        child.observe(seconds)
