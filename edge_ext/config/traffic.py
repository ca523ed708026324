"""Traffic handling: the response cache, routing strategies and the per-provider breaker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from edge_ext.config.base import Strict
from edge_ext.config.semantic import Semantic

if TYPE_CHECKING:
    from edge_ext.config.server import Processor


class Cache(Strict):
    enabled: bool = True
    # temperature_zero: requests with temperature 0 (or opted in by header); always; opt_in.
    policy: Literal["temperature_zero", "always", "opt_in"] = "temperature_zero"
    opt_in_header: str = "x-edge-cache-enable"
    # Entries are private to the caller's key (or tenant) unless this names a shared space.
    shared_namespace: str | None = None
    cache_multiple_choices: bool = False
    # How long identical concurrent misses wait for the first one's answer (Envoy's
    # max_message_timeout, 30 s, bounds it).
    single_flight_wait_s: Annotated[float, Field(ge=0, le=29)] = 25.0
    l1_max_entries: Annotated[int, Field(ge=0)] = 10_000
    l1_max_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    l1_ttl_s: Annotated[float, Field(ge=0)] = 300.0
    l2_ttl_s: Annotated[float, Field(ge=0)] = 3600.0
    max_ttl_s: Annotated[float, Field(ge=0)] = 86400.0
    # The L2 tier is the `redis` section's Redis (or redis.cache) when there is one: shared by
    # replicas. Without it, the workers of one instance share a local disk cache in local_dir.
    # A Redis read slower than this is a miss.
    redis_read_budget_ms: Annotated[int, Field(ge=1, le=5000)] = 50
    local_dir: str | None = None
    local_size_limit_bytes: Annotated[int, Field(ge=1024 * 1024)] = 1024 * 1024 * 1024
    # Paraphrases, after the exact lookup misses (edge_ext.config.semantic); off by default.
    semantic: Semantic = Semantic()

    def local_directory(self, processor: "Processor") -> str:
        if self.local_dir:
            return self.local_dir
        return processor.directory + "/cache"


class Breaker(Strict):
    """A provider's circuit breaker (edge_ext.routing.breaker reads these settings as they are)."""

    failure_threshold: Annotated[int, Field(ge=1)] = 5
    # 0: an opened breaker lets its probes through at once (the state machine allows it).
    open_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    success_threshold: Annotated[int, Field(ge=1)] = 2
    half_open_probes: Annotated[int, Field(ge=1)] = 1
    # A provider asking for a day of silence (retry-after) should not disable it for a day.
    max_retry_after_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 300.0
    # A probe whose outcome never arrives (worker crashed, stream abandoned) must not keep the
    # breaker half-open forever: after this long its slot is handed to a new probe.
    probe_timeout_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0


class RateLimits(Strict):
    """How providers' own rate-limit headers steer routing (edge_ext.routing.ratelimits)."""

    enabled: bool = True
    # A provider with less than this share of its requests or tokens left moves after the others.
    low_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    # The longest a provider is held back after the answer that reported it low or exhausted.
    max_hold_s: Annotated[float, Field(gt=0, le=86400)] = 300.0


class Routing(Strict):
    # round_robin | weighted | failover | least_latency | cost_optimized
    strategy: str = "failover"
    # Public model name -> strategy, for groups that route differently from the default.
    models: dict[str, str] = Field(default_factory=dict)
    least_latency_epsilon: Annotated[float, Field(ge=0, le=1)] = 0.05
    breaker: Breaker = Breaker()
    rate_limits: RateLimits = RateLimits()
    # Public model -> the model group a content-policy refusal of its provider is retried on,
    # once, inside the same request (opt-in per group; a refusal is otherwise the answer).
    refusal_fallback: dict[str, str] = Field(default_factory=dict)
    # In-flight failover: how many providers one request may try before its failure reaches the
    # client (1: none). They are tried in the strategy's order, skipping fallbacks whose breaker
    # is not closed.
    max_attempts: Annotated[int, Field(ge=1, le=5)] = 2
    # With a `redis` section, replicas share breaker state through it (a provider failing for
    # one is avoided by all within about a second); without it, or while it is down, the
    # instance's own state rules.

    @model_validator(mode="after")
    def _known(self) -> "Routing":
        from edge_ext.routing.strategies import REGISTRY

        for where, name in (("strategy", self.strategy), *((f"models.{m}", s) for m, s in self.models.items())):
            if name not in REGISTRY:
                raise ValueError(f"{where}: unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}")
        return self
