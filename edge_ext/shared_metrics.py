"""Metrics of state the workers share, read by the supervisor at scrape time.

Breaker state and latency live in the workers' shared state files; a gauge kept by each worker
would only know the transitions that worker happened to apply. Reading the files when Prometheus
scrapes gives the one answer every worker acts on.
"""

from __future__ import annotations

import os

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
        self._providers = [p.name for p in config.providers]
        self._stores = None

    def _open(self):
        if self._stores is None and os.path.exists(self._breakers_path):
            from edge_ext.routing.shared_latency import SharedLatencyTracker
            from edge_ext.routing.shared_state import LocalBreakerStore

            self._stores = (LocalBreakerStore(self._breakers_path), SharedLatencyTracker(self._latency_path))
        return self._stores

    def collect(self):
        state = GaugeMetricFamily("edge_ext_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
                                  labels=["provider"])
        ewma = GaugeMetricFamily("edge_ext_provider_latency_ewma_seconds",
                                 "EWMA of time to response headers per provider (least_latency routing)", labels=["provider"])
        stores = self._open()
        for provider in self._providers:
            if stores is None:
                state.add_metric([provider], 0)
                continue
            breakers, latency = stores
            state.add_metric([provider], _STATE_VALUE[breakers.record(provider).state])
            value = latency.ewma(provider)
            if value is not None:
                ewma.add_metric([provider], value)
        yield state
        yield ewma
