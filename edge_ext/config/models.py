"""The configuration schema: frozen pydantic models, unknown keys rejected.

Every key is documented in docs/configuration.md; defaults are chosen so that the minimal
config in the README works as is.

This module holds the root ``Config``; its sections live in ``base`` (``Strict``),
``providers``, ``server`` (listener, processor, Envoy, metrics, telemetry), ``traffic``
(cache, routing, breaker), ``clients`` (auth, budgets, accounting) and ``redis`` (the Redis
the replicas share), and are re-exported
here so that ``from edge_ext.config.models import X`` keeps working for every model.
"""

from __future__ import annotations

from pydantic import model_validator

from edge_ext.config.base import Strict
from edge_ext.config.clients import Accounting, Auth, Budget, Budgets, ClientKey, PiiPolicy
from edge_ext.config.providers import Provider, ProviderKind
from edge_ext.config.redis import Redis, RedisConnection
from edge_ext.config.server import (
    EnvoyAdmin, EnvoySettings, Listen, ListenTLS, Metrics, Processor, ProcessorMTLS, RateLimit, Scrapers, Telemetry,
)
from edge_ext.config.traffic import Breaker, Cache, Routing
from edge_ext.cost.pricing import PricingOverrides

__all__ = [
    "Accounting", "Auth", "Breaker", "Budget", "Budgets", "Cache", "ClientKey", "Config", "EnvoyAdmin",
    "EnvoySettings", "Listen", "ListenTLS", "Metrics", "PiiPolicy", "PricingOverrides", "Processor",
    "ProcessorMTLS", "Provider", "ProviderKind", "RateLimit", "Redis", "RedisConnection", "Routing", "Scrapers", "Strict", "Telemetry",
]


class Config(Strict):
    listen: Listen = Listen()
    providers: tuple[Provider, ...]
    processor: Processor = Processor()
    metrics: Metrics = Metrics()
    envoy: EnvoySettings = EnvoySettings()
    cache: Cache = Cache()
    routing: Routing = Routing()
    accounting: Accounting = Accounting()
    auth: Auth = Auth()
    budgets: Budgets = Budgets()
    # The Redis shared by replicas: the cache's L2 tier, breakers, budgets, client keys.
    redis: Redis | None = None
    telemetry: Telemetry = Telemetry()
    # Extends or overrides the shipped price table (edge_ext/data/pricing.yaml), per model.
    pricing: PricingOverrides = PricingOverrides()

    @model_validator(mode="after")
    def _unique(self) -> "Config":
        names = [p.name for p in self.providers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"provider names must be unique: {sorted(dup)}")
        if not self.providers:
            raise ValueError("configure at least one provider")
        # Envoy's request timer runs until the request goes upstream: a follower of an identical
        # cacheable miss waits for the leader's answer (one extended processor message) first.
        held = self.cache.single_flight_wait_s + 1 + self.processor.message_timeout_ms / 1000
        if self.cache.enabled and self.listen.request_timeout_s <= held:
            raise ValueError(f"listen.request_timeout_s must exceed {held:g}s (cache.single_flight_wait_s + 1 + "
                             "processor.message_timeout_ms): a cache follower's request waits that long")
        return self

    @model_validator(mode="after")
    def _refusal_fallback_refers(self) -> "Config":
        served = {m for p in self.providers for m in p.public_models()}
        for model, fallback in self.routing.refusal_fallback.items():
            for name in (model, fallback):
                if name not in served:
                    raise ValueError(f"routing.refusal_fallback.{model}: no provider serves the model {name!r}")
            if model == fallback:
                raise ValueError(f"routing.refusal_fallback.{model}: the fallback must be another model group")
        return self

    @model_validator(mode="after")
    def _semantic_refers(self) -> "Config":
        s = self.cache.semantic
        if not s.enabled:
            return self
        if not self.cache.enabled:
            raise ValueError("cache.semantic.enabled needs cache.enabled")
        providers = {p.name: p for p in self.providers}
        embedder = providers.get(s.embedding.provider)
        if embedder is None:
            raise ValueError(f"cache.semantic.embedding.provider: no provider named {s.embedding.provider!r}")
        if embedder.kind == "anthropic":
            raise ValueError(f"cache.semantic.embedding.provider: {embedder.name} is kind anthropic, which has no embeddings API")
        served = {m for p in self.providers for m in p.public_models()}
        unknown = sorted(set(s.models) - served)
        if unknown:
            raise ValueError(f"cache.semantic.models: no provider serves {unknown}")
        if s.keys != "*" and not self.auth.redis_keys:
            missing = sorted(set(s.keys) - {k.id for k in self.auth.keys})
            if missing:
                raise ValueError(f"cache.semantic.keys: no client key has the id {missing} (auth.keys[].id)")
        return self

    @model_validator(mode="after")
    def _budgets_are_metered(self) -> "Config":
        # Spend and tokens are read from each answer by accounting: without it nothing is charged.
        if not self.accounting.enabled and (self.budgets.limits or any(k.tokens_per_minute for k in self.auth.keys)):
            raise ValueError("budgets and tokens_per_minute charge what answers cost: they need accounting.enabled")
        return self

    @model_validator(mode="after")
    def _redis_keys_need_redis(self) -> "Config":
        if self.auth.redis_keys and self.redis is None:
            raise ValueError("auth.redis_keys reads client keys from Redis: configure the redis section")
        return self
