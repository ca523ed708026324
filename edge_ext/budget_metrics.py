"""Budget gauges, read from the spend ledger by the supervisor when Prometheus scrapes.

Spend lives in the ledger the workers share (a SQLite file, or Redis across replicas); a worker's
counters only know what that worker settled. Reading the ledger at scrape time gives the figure
admission itself checks, so an alert on "spent / limit" fires before clients see
``budget_exceeded``. Labels come from the config's budgets only (bounded).

The scrape runs in the metrics server's thread: the ledger's async API runs on a loop of its
own, one scrape at a time. A ledger that cannot be read leaves the gauges out of that scrape (a
Prometheus alert then sees the series absent, not a made-up zero).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from prometheus_client.core import GaugeMetricFamily

from edge_ext.config.models import Config

log = logging.getLogger("edge_ext.metrics")
LABELS = ["scope", "id", "period"]


class BudgetCollector:
    def __init__(self, config: Config):
        from edge_ext.metrics import WorkerMetrics
        from edge_ext.wiring import build_budgets, build_redis

        # The supervisor's own ledger reader: its store errors are logged here, not counted in
        # any worker's metrics.
        self._step = build_budgets(config, WorkerMetrics(), build_redis(config)[0])[0] if config.budgets.limits else None
        self._loop = asyncio.new_event_loop() if self._step else None
        self._lock = threading.Lock()

    def collect(self):
        if self._step is None:
            return
        with self._lock:
            try:
                rows = self._loop.run_until_complete(self._step.status())
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail for the ledger
                log.warning("budget gauges skipped: the spend ledger could not be read (%s: %s)", type(exc).__name__, exc)
                return
        limit = GaugeMetricFamily("edge_ext_budget_limit_usd", "Budget limit in USD", labels=LABELS)
        spent = GaugeMetricFamily("edge_ext_budget_spent_usd",
                                  "USD spent in the budget's current period (settled, estimated part included)", labels=LABELS)
        for spec, _key, spent_usd, _verdict in rows:
            labels = [spec.scope, spec.id, spec.period]
            limit.add_metric(labels, float(spec.limit_usd))
            spent.add_metric(labels, float(spent_usd))
        yield limit
        yield spent
