"""Dependencies are built here, once per worker, and passed in; nothing else constructs them."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.shared import DiskStore, RedisStore, SharedStore
from edge_ext.cache.tiered import TieredCache
from edge_ext.clock import Clock, monotonic
from edge_ext.config.models import Config
from edge_ext.cost.admission import BudgetStep
from edge_ext.cost.pricing import load_pricing
from edge_ext.health import StoreHealth
from edge_ext.driver import Driver
from edge_ext.metric_files import METRICS_DIR_ENV, MetricsFlusher
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.engine import Policy
from edge_ext.routing.router import Router
from edge_ext.routing.shared_latency import SharedLatencyTracker
from edge_ext.routing.shared_limits import SharedLimits
from edge_ext.routing.shared_state import LocalBreakerStore

log = logging.getLogger("edge_ext.wiring")


@dataclass(frozen=True)
class WorkerDeps:
    config: Config
    clock: Clock
    metrics: WorkerMetrics
    policy: Policy
    driver: Driver  # performs the policy's I/O
    budgets: BudgetStep | None
    # Background services with async start() and aclose(), run by the worker's event loop.
    services: list = field(default_factory=list)
    semantic: Any = None  # the semantic cache (edge_ext.semantic.cache), for the admin API's purge


def provider_keys(config: Config) -> dict[str, str | None]:
    keys = {}
    for provider in config.providers:
        keys[provider.name] = provider.read_key()
        if (provider.api_key_env or provider.api_key_file) and not keys[provider.name]:
            source = f"${provider.api_key_env}" if provider.api_key_env else provider.api_key_file
            log.warning("provider %s: no API key in %s; its requests will get 503", provider.name, source)
    return keys


def build_redis(config: Config) -> tuple[Any, Any]:
    """The worker's Redis clients, (shared state, cache): the same one unless redis.cache names
    another Redis; (None, None) without a redis section."""
    r = config.redis
    if r is None:
        return None, None
    from edge_ext.redis_clients import connect

    shared = connect(r)
    return shared, (connect(r.cache, "redis.cache") if r.cache is not None else shared)


def build_cache(config: Config, clock: Clock, metrics: WorkerMetrics, redis: Any = None) -> TieredCache | None:
    c = config.cache
    if not c.enabled:
        return None
    l2: SharedStore
    if redis is not None:
        l2 = RedisStore(redis, c.redis_read_budget_ms / 1000)
    else:
        l2 = DiskStore(c.local_directory(config.processor), c.local_size_limit_bytes)
    l1 = MemoryCache(c.l1_max_entries, c.l1_max_bytes, clock, on_evict=metrics.cache_evictions.inc)
    health = StoreHealth("cache", l2.name, metrics.store_errors)
    return TieredCache(l1, l2, c.l1_ttl_s, c.l2_ttl_s, health=health)


def build_semantic(config: Config, keys: dict[str, str | None], clock: Clock, metrics: WorkerMetrics, redis: Any = None):
    """The semantic cache, when configured; its shared tier on the cache's Redis (``redis``), if any."""
    s = config.cache.semantic
    if not (config.cache.enabled and s.enabled):
        return None
    from edge_ext.semantic.cache import SemanticCache
    from edge_ext.semantic.embeddings import EmbeddingClient
    from edge_ext.semantic.index import LocalIndex
    from edge_ext.semantic.shared import SharedVectors

    provider = next(p for p in config.providers if p.name == s.embedding.provider)
    embedder = EmbeddingClient(provider, keys.get(provider.name), s.embedding,
                               StoreHealth("embeddings", provider.name, metrics.store_errors))
    local = LocalIndex(s.index.max_entries, s.index.max_bytes, s.index.ttl_s, clock, on_evict=metrics.semantic_evictions.inc)
    shared = None
    if redis is not None and s.shared:
        if (config.redis.cache or config.redis).cluster is not None:
            # Vector indexes are per server: a cluster's nodes would each search a slice.
            log.warning("cache.semantic: the cache's Redis is a cluster, where vector search is not shared; "
                        "semantic entries stay in each worker's own index")
        else:
            shared = SharedVectors(redis, config.cache.redis_read_budget_ms / 1000,
                                   StoreHealth("semantic", "redis", metrics.store_errors))
    return SemanticCache(s, embedder, local, shared, on_lookup=metrics.on_semantic)


# Where the workers of one instance share breaker and latency state, in its state directory
# (``processor.directory``, edge_ext.config.instance).
STATE_FILES = ("breakers.bin", "latency.bin", "ratelimits.bin")


def build_router(config: Config, keys: dict[str, str | None], metrics: WorkerMetrics,
                 redis: Any = None) -> tuple[Router, SharedLatencyTracker, list]:
    settings = config.routing.breaker
    directory = config.processor.directory
    # Breaker deadlines are wall-clock: they are compared across processes.
    store = LocalBreakerStore(os.path.join(directory, STATE_FILES[0]), settings, clock=time.time,
                              on_transition=metrics.on_breaker_transition)
    services = []
    if redis is not None:
        import socket

        from edge_ext.routing.redis_store import RedisBreakerStore

        store = RedisBreakerStore(redis, "edge-ext", f"{socket.gethostname()}-{os.getpid()}", local=store,
                                  health=StoreHealth("breakers", "redis", metrics.store_errors))
        store.watch(p.name for p in config.providers)
        services.append(store)  # its refresh task runs in the worker's event loop
    latency = SharedLatencyTracker(os.path.join(directory, STATE_FILES[1]))
    limits = SharedLimits(os.path.join(directory, STATE_FILES[2]))
    router = Router(config, keys, store, latency, prices=load_pricing(overrides=config.pricing).price, limits=limits)
    return router, latency, services


def build_budgets(config: Config, metrics: WorkerMetrics, redis: Any = None) -> tuple[BudgetStep | None, list]:
    """The budget step (None without budgets or token limits) and its services: the step writes
    its last settlements before the worker exits, then a Redis ledger what it kept while Redis
    was away."""
    from decimal import Decimal

    from edge_ext.cost.budget import BudgetSpec
    from edge_ext.cost.ledgers import DiskLedger, RedisLedger

    b = config.budgets
    tpm = {k.id: k.tokens_per_minute for k in config.auth.keys if k.tokens_per_minute}
    if not b.limits and not tpm:
        return None, []
    local = DiskLedger(b.local_dir or os.path.join(config.processor.directory, "ledger"))
    ledger = local
    if redis is not None:
        ledger = RedisLedger(redis, local, b.on_store_error == "fail_open", config.redis.timeout_ms / 1000,
                             health=StoreHealth("budgets", "redis", metrics.store_errors))
    specs = [BudgetSpec(l.scope, l.id, l.period, Decimal(str(l.limit_usd))) for l in b.limits]
    # A hold outlives the longest request the route timeouts allow plus the delivery of its
    # outcome (a flush interval), with a grace; then, unsettled, it is charged as estimated.
    longest = max((p.timeout_s for p in config.providers), default=120) * config.routing.max_attempts
    if config.cache.enabled:
        longest += config.cache.single_flight_wait_s + 1  # a follower may wait for its leader first
    grace = config.accounting.outcome_flush_ms / 1000 + config.accounting.outcome_grace_s
    step = BudgetStep(specs, ledger, time.time, tpm, prices=model_prices(config), hold_ttl_s=longest + grace)
    # Closed in this order: the step's last settlements reach the ledger, then the ledger writes
    # what it kept during an outage.
    return step, [step, ledger] if ledger is not local else [step]


def model_prices(config: Config):
    """The prices of the upstream models that may serve a public model (what a request reserves at)."""
    from edge_ext.routing.table import ModelTable

    table, prices = ModelTable(config), load_pricing(overrides=config.pricing)

    def prices_of(model: str) -> tuple:
        return tuple(p for t in table.targets(model) if (p := prices.price(t.upstream_model)) is not None)

    return prices_of


def build_worker(config: Config, clock: Clock = monotonic, metrics: WorkerMetrics | None = None) -> WorkerDeps:
    metrics = metrics or WorkerMetrics()
    redis, cache_redis = build_redis(config)
    cache = build_cache(config, clock, metrics, cache_redis)
    keys = provider_keys(config)
    router, latency, services = build_router(config, keys, metrics, redis)
    # Wall time stamps API bodies (created) and cache entries, which outlive processes; every
    # duration uses the monotonic clock.
    accounting = None
    if config.accounting.enabled:
        accounting = Accounting(load_pricing(overrides=config.pricing), on_charge=metrics.on_charge, on_saved=metrics.on_saved,
                                on_charges=metrics.on_charges)
    if not config.auth.on and config.auth.enabled is None:
        log.warning("auth is off: no client keys are configured, so every caller is trusted "
                    "(list auth.keys, or set auth.enabled: false to say so explicitly)")
    budgets, budget_services = build_budgets(config, metrics, redis)
    services += budget_services
    key_store = None
    if config.auth.on and config.auth.redis_keys:
        from edge_ext.auth_redis import RedisKeyStore

        key_store = RedisKeyStore(redis, config.auth.redis_prefix, clock, config.auth.redis_cache_ttl_s,
                                  config.redis.timeout_ms / 1000,
                                  health=StoreHealth("client_keys", "redis", metrics.store_errors))
    semantic_cache = build_semantic(config, keys, clock, metrics, cache_redis) if cache is not None else None
    step = None
    if semantic_cache is not None:
        from edge_ext.policy.semantic import SemanticStep

        services.append(semantic_cache)  # its embedding client
        embedder = semantic_cache.embedder
        step = SemanticStep(config.cache.semantic, (embedder.provider, embedder.model), config.cache.shared_namespace,
                            accounting, config.processor.message_timeout_ms / 1000, on_embedding=metrics.on_embedding)
    policy = Policy(config, clock, keys, wall=time.time, on_cache=metrics.on_cache, router=router, latency=latency,
                    accounting=accounting, cache=cache is not None, key_store=key_store is not None,
                    budgets=budgets is not None, semantic=step)
    driver = Driver(policy, config, cache=cache, key_store=key_store, budgets=budgets, semantic=semantic_cache)
    metrics_dir = os.environ.get(METRICS_DIR_ENV)
    if config.metrics.enabled and metrics_dir:
        services.append(MetricsFlusher(metrics, metrics_dir, config.metrics.flush_interval_s))
    # Last: connected before the worker serves, closed after the stores that use them.
    if redis is not None:
        from edge_ext.redis_clients import ClientService

        services.append(ClientService(redis))
        if cache_redis is not redis:
            services.append(ClientService(cache_redis, "redis.cache"))
    return WorkerDeps(config, clock, metrics, policy, driver, budgets, services, semantic_cache)
