"""Dependencies are built here, once per worker, and passed in; nothing else constructs them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.shared import DiskStore, RedisStore, SharedStore
from edge_ext.cache.tiered import TieredCache
from edge_ext.clock import Clock, monotonic
from edge_ext.config.models import Config
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.engine import Policy

log = logging.getLogger("edge_ext.wiring")


@dataclass(frozen=True)
class WorkerDeps:
    config: Config
    clock: Clock
    metrics: WorkerMetrics
    policy: Policy


def provider_keys(config: Config) -> dict[str, str | None]:
    keys = {}
    for provider in config.providers:
        keys[provider.name] = provider.read_key()
        if (provider.api_key_env or provider.api_key_file) and not keys[provider.name]:
            source = f"${provider.api_key_env}" if provider.api_key_env else provider.api_key_file
            log.warning("provider %s: no API key in %s; its requests will get 503", provider.name, source)
    return keys


def build_cache(config: Config, clock: Clock, metrics: WorkerMetrics) -> TieredCache | None:
    c = config.cache
    if not c.enabled:
        return None
    l2: SharedStore
    if c.redis_url:
        l2 = RedisStore(c.redis_url, c.redis_read_budget_ms / 1000)
    else:
        l2 = DiskStore(c.local_directory(config.processor), c.local_size_limit_bytes)
    l1 = MemoryCache(c.l1_max_entries, c.l1_max_bytes, clock, on_evict=metrics.cache_evictions.inc)
    return TieredCache(l1, l2, c.l1_ttl_s, c.l2_ttl_s, on_l2_error=lambda store: metrics.cache_l2_errors.labels(store=store).inc())


def build_worker(config: Config, clock: Clock = monotonic, metrics: WorkerMetrics | None = None) -> WorkerDeps:
    metrics = metrics or WorkerMetrics()
    cache = build_cache(config, clock, metrics)
    # Wall time stamps API bodies (created) and cache entries, which outlive processes; every
    # duration uses the monotonic clock.
    policy = Policy(config, clock, provider_keys(config), wall=time.time, cache=cache, on_cache=metrics.on_cache)
    return WorkerDeps(config, clock, metrics, policy)
