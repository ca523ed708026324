"""The Prometheus families one worker records in, their names, help, labels and buckets.

The dashboard and alert rules in monitoring/ are checked against these names
(tests/unit/test_monitoring.py).
"""

from __future__ import annotations

from edge_ext.metric_values import Counter, Histogram

# Processor time per ext_proc message is tens of microseconds; buckets start well below 1 ms.
_PHASE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class WorkerFamilies:
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

    def families(self) -> list:
        return [v for v in vars(self).values() if isinstance(v, (Counter, Histogram))]
