"""Dependencies are built here, once per worker, and passed in; nothing else constructs them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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


def build_worker(config: Config, clock: Clock = monotonic, metrics: WorkerMetrics | None = None) -> WorkerDeps:
    metrics = metrics or WorkerMetrics()
    # Wall time only stamps API bodies (created); every duration uses the monotonic clock.
    policy = Policy(config, clock, provider_keys(config), wall=time.time)
    return WorkerDeps(config, clock, metrics, policy)
