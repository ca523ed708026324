"""Prometheus metrics of one worker process.

Samples go to in-memory values (edge_ext.metric_values): the request path adds to floats and
list slots, nothing else. A background flush writes them to the supervisor's metrics directory
(edge_ext.metric_files), and the supervisor serves the sum of all workers on one endpoint, so a
scrape sees the instance, not a random worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_ext.metric_values import Counter, Histogram

_AUTH_FAILURES = frozenset({"missing_api_key", "invalid_api_key", "model_not_allowed"})
_BUDGET_REFUSALS = frozenset({"budget_exceeded", "tokens_per_minute_exceeded"})

# Processor time per ext_proc message is tens of microseconds; buckets start well below 1 ms.
_PHASE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class WorkerMetrics:
    def __init__(self) -> None:
        self.streams = Counter("edge_ext_streams", "ext_proc streams opened by Envoy")
        self.protocol_errors = Counter(
            "edge_ext_protocol_errors", "ext_proc streams ended with a gRPC status for a message out of protocol "
            "order, by message", ["message"])
        self.requests = Counter(
            "edge_ext_requests",
            "HTTP requests seen by the processor, by outcome (routed or an error code) and provider",
            ["outcome", "provider"],
        )
        self.phase_seconds = Histogram(
            "edge_ext_processing_seconds",
            "Processor time spent on one ext_proc message, by phase",
            ["phase"],
            buckets=_PHASE_BUCKETS,
        )
        self.cache_lookups = Counter("edge_ext_cache_lookups", "Cache lookups by result (hit-l1, hit-l2, miss)", ["result"])
        self.cache_stored_bytes = Counter("edge_ext_cache_stored_bytes", "Bytes of answers written to the cache")
        self.cache_stores = Counter("edge_ext_cache_stores", "Answers written to the cache")
        self.cache_evictions = Counter("edge_ext_cache_l1_evictions", "L1 entries evicted to stay within bounds")
        # Degraded modes (edge_ext.health): the cache's L2, breaker sharing, budgets, client keys.
        self.store_errors = Counter("edge_ext_store_errors", "Failures of a store the worker carried on without, by use and store",
                                    ["use", "store"])
        self.semantic_lookups = Counter(
            "edge_ext_semantic_lookups", "Semantic cache lookups after an exact miss, by result (hit, miss, no_embedding)",
            ["result"])
        self.semantic_similarity = Histogram(
            "edge_ext_semantic_similarity", "Cosine similarity of the best candidate of each semantic lookup that had one",
            buckets=(0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1.0))
        self.semantic_evictions = Counter("edge_ext_semantic_evictions", "Semantic index entries evicted to stay within bounds")
        self.embedding_seconds = Histogram(
            "edge_ext_embedding_seconds", "Time of the embedding call of a semantic lookup (successful calls)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.embedding_tokens = Counter("edge_ext_embedding_tokens", "Tokens embedded for semantic lookups, by model",
                                        ["model"])
        self.embedding_cost_usd = Counter(
            "edge_ext_embedding_cost_usd", "USD spent on embeddings for semantic lookups, by model and tenant; also in "
            "edge_ext_tenant_cost_usd", ["model", "tenant"])
        self.breaker_transitions = Counter(
            "edge_ext_breaker_transitions", "Circuit breaker state changes by provider and new state", ["provider", "to"])
        # Names follow the OpenTelemetry GenAI semantic conventions where one exists.
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens per answer by token type", ["gen_ai_token_type", "provider", "model"],
            buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576))
        self.cost_usd = Counter("edge_ext_cost_usd", "USD spent at providers, by provider and model", ["provider", "model"])
        self.saved_usd = Counter("edge_ext_saved_usd", "USD not spent thanks to cache hits, by model", ["model"])
        self.unpriced = Counter("edge_ext_unpriced_requests", "Answers for models without a price", ["model"])
        self.request_duration = Histogram(
            "gen_ai_server_request_duration_seconds", "Time from routing to the end of the provider's answer",
            ["provider", "model"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds", "Time from routing to the provider's response headers",
            ["provider", "model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.responses = Counter("edge_ext_responses", "Provider answers by status class", ["provider", "status_class"])
        self.tenant_cost_usd = Counter("edge_ext_tenant_cost_usd", "USD spent at providers by tenant", ["tenant"])
        self.tenant_tokens = Counter("edge_ext_tenant_tokens", "Tokens (input and output) by tenant", ["tenant"])
        self.estimated_tokens = Counter(
            "edge_ext_estimated_tokens", "Tokens charged from an estimate (answers cut short or without usage), by "
            "tenant; also in edge_ext_tenant_tokens", ["tenant"])
        self.estimated_cost_usd = Counter(
            "edge_ext_estimated_cost_usd", "USD charged from an estimate (answers cut short or without usage), by "
            "tenant; also in edge_ext_tenant_cost_usd", ["tenant"])
        self.budget_refusals = Counter("edge_ext_budget_refusals", "Requests refused by a budget or a tokens-per-minute limit",
                                       ["kind"])
        self.auth_failures = Counter("edge_ext_auth_failures", "Requests refused for a missing, unknown or unauthorized key",
                                     ["code"])
        self.translations = Counter("edge_ext_translations", "Requests served by a provider speaking another API",
                                    ["client_api", "provider_api"])
        self.attempts = Counter(
            "edge_ext_upstream_attempts",
            "Provider attempts by result: answered, retried (failed, and Envoy tried the next provider), "
            "or refused (a content-policy refusal retried on the refusal fallback group)",
            ["provider", "result"])
        self.failovers = Counter("edge_ext_failovers", "Requests answered by another provider than the first one tried",
                                 ["from_provider", "to_provider"])
        self.refusal_fallbacks = Counter(
            "edge_ext_refusal_fallbacks", "Content-policy refusals retried on the model's refusal fallback group",
            ["model", "fallback"])
        self._phase_children = {}

    def families(self) -> list:
        return [v for v in vars(self).values() if isinstance(v, (Counter, Histogram))]

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
