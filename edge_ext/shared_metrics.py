"""Metrics of state the workers share, read by the supervisor at scrape time.

Breaker state, latency and the providers' reported rate limits live in the workers' shared state files; a gauge kept by each worker
would only know the transitions that worker happened to apply. Reading the files when Prometheus
scrapes gives the one answer every worker acts on.
"""

from __future__ import annotations

import os
import time

from prometheus_client.core import GaugeMetricFamily

from edge_ext.config.models import Config
from edge_ext.routing.breaker import BreakerState

_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class SharedStateCollector:
    def __init__(self, config: Config):
        from edge_ext.wiring import STATE_FILES

        directory = config.processor.directory
        self._breakers_path = os.path.join(directory, STATE_FILES[0])
        self._latency_path = os.path.join(directory, STATE_FILES[1])
        self._limits_path = os.path.join(directory, STATE_FILES[2])
        self._providers = [p.name for p in config.providers]
        self._stores = None

    def _open(self):
        if self._stores is None and os.path.exists(self._breakers_path):
            from edge_ext.routing.shared_latency import SharedLatencyTracker
            from edge_ext.routing.shared_limits import SharedLimits
            from edge_ext.routing.shared_state import LocalBreakerStore

            self._stores = (LocalBreakerStore(self._breakers_path), SharedLatencyTracker(self._latency_path),
                            SharedLimits(self._limits_path, max_age=0.0))
        return self._stores

    def collect(self):
        state = GaugeMetricFamily("edge_ext_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
                                  labels=["provider"])
        ewma = GaugeMetricFamily("edge_ext_provider_latency_ewma_seconds",
                                 "EWMA of time to response headers per provider (least_latency routing)", labels=["provider"])
        remaining = GaugeMetricFamily("edge_ext_provider_ratelimit_remaining",
                                      "What the provider's last answer said is left of its rate limit (requests or tokens), "
                                      "the whole limit once its reset passed", labels=["provider", "budget"])
        limit = GaugeMetricFamily("edge_ext_provider_ratelimit_limit", "The provider's rate limit as its last answer reported it",
                                  labels=["provider", "budget"])
        stores = self._open()
        for provider in self._providers:
            if stores is None:
                state.add_metric([provider], 0)
                continue
            breakers, latency, limits = stores
            _add_limits(remaining, limit, provider, limits.limits(provider), time.time())
            state.add_metric([provider], _STATE_VALUE[breakers.record(provider).state])
            value = latency.ewma(provider)
            if value is not None:
                ewma.add_metric([provider], value)
        yield state
        yield ewma
        yield remaining
        yield limit


def _add_limits(remaining: GaugeMetricFamily, limit: GaugeMetricFamily, provider: str, reported, now: float) -> None:
    if reported is None:
        return
    for name in ("requests", "tokens"):
        budget = getattr(reported, name)
        if budget is None:
            continue
        refilled = now >= budget.reset_at
        if refilled and budget.limit is None:
            continue  # refilled to an unknown limit: nothing true to say
        remaining.add_metric([provider, name], budget.limit if refilled else budget.remaining)
        if budget.limit is not None:
            limit.add_metric([provider, name], budget.limit)
