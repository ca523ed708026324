"""Degraded modes: a shared store the worker can do without is failing, and the worker carries on.

Six stores have one: the cache's L2 tier (a failure is a miss), breaker sharing (each replica
decides alone), the Redis budget ledger (fail_open admits against the last known spend, fail_closed
refuses), the Redis client-key store (keys only Redis holds are refused), and the semantic cache's
embedding provider (a semantic miss) and shared vector tier (each worker's own index answers). Each failure is
counted in ``edge_ext_store_errors_total{use, store}``; the log gets one line when a store starts
failing, one a minute at most while it keeps failing (with the count since the last line), and
one when it answers again, so an outage is visible without a line per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge_ext.health")

LOG_EVERY_S = 60.0
# What the worker does instead, by use.
CONSEQUENCES = {
    "cache": "treating lookups as misses",
    "breakers": "each replica decides its breakers alone",
    "budgets": "budgets admit against the last known spend (fail_open) or refuse (fail_closed)",
    "client_keys": "keys not cached in the worker are refused",
    "embeddings": "semantic lookups are misses (the exact cache still answers)",
    "semantic": "semantic lookups use each worker's own index",
}


class StoreHealth:
    """The health of one store used for one purpose (``use``: a key of CONSEQUENCES)."""

    def __init__(self, use: str, store: str, counter: Any = None, *, consequence: str | None = None,
                 clock: Callable[[], float] = time.monotonic, log_every_s: float = LOG_EVERY_S):
        self.use, self.store, self.consequence = use, store, consequence or CONSEQUENCES[use]
        self._count = counter.labels(use=use, store=store).inc if counter is not None else None
        self._clock, self._every = clock, log_every_s
        self.failing = False
        self.errors = 0  # since it started failing
        self._since = self._logged_at = 0.0
        self._unlogged = 0

    def failed(self, exc: BaseException) -> None:
        if self._count is not None:
            self._count()
        now = self._clock()
        self.errors += 1
        if not self.failing:
            self.failing, self._since, self._logged_at, self._unlogged = True, now, now, 0
            log.warning("%s: %s store failing (%s: %s); %s", self.use, self.store, type(exc).__name__, exc, self.consequence)
            return
        self._unlogged += 1
        if now - self._logged_at >= self._every:
            log.warning("%s: %s store still failing, %d errors in %.0f s (last: %s: %s); %s", self.use, self.store,
                        self._unlogged, now - self._logged_at, type(exc).__name__, exc, self.consequence)
            self._logged_at, self._unlogged = now, 0

    def ok(self) -> None:
        if self.failing:
            log.info("%s: %s store answers again after %d errors in %.0f s", self.use, self.store, self.errors,
                     self._clock() - self._since)
            self.failing, self.errors = False, 0
