"""Where a provider's breaker record lives, as seen by the router: a small Protocol the wiring
fills in.

The router (and through it the policy) holds a ``BreakerStore`` and runs every breaker event
through it; which store, and the I/O behind it, is the wiring's choice (edge_ext.wiring):

- ``MemoryBreakerStore``, here: one process (tests, a single worker, the Redis store's fallback).
- ``LocalBreakerStore`` (``edge_ext.routing.shared_state``): every worker of one instance,
  through an mmap'd file.
- ``RedisBreakerStore`` (``edge_ext.routing.redis_store``): replicas, over a local store.

Every store applies events with the pure ``breaker.step``, so every backend runs the same state
machine, and reports state changes to the ``Transition`` callback it was built with (metrics).
``StoreBreaker(store, provider)`` gives one provider's breaker the same API as ``Breaker``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from edge_ext.clock import Clock
from edge_ext.routing.breaker import BreakerApi, BreakerEvent, BreakerRecord, BreakerSettings, BreakerState, Step, step

__all__ = ["EMPTY", "BreakerStore", "MemoryBreakerStore", "StoreBreaker", "Transition", "notify"]

Transition = Callable[[str, BreakerState, BreakerState], None]  # (provider, old, new)

EMPTY = BreakerRecord()


class BreakerStore(Protocol):
    settings: BreakerSettings

    def now(self) -> float:
        """The store's clock (wall-clock seconds for shared stores)."""
        ...

    def record(self, provider: str) -> BreakerRecord:
        """The provider's current record; hot path, never blocks on I/O."""
        ...

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        """Run ``step`` on the provider's record atomically with respect to every sharer."""
        ...


class StoreBreaker(BreakerApi):
    """One provider's breaker living in a store: ``allow()``, ``on_failure()``... as on Breaker."""

    def __init__(self, store: BreakerStore, provider: str):
        self.store = store
        self.provider = provider

    @property
    def record(self) -> BreakerRecord:
        return self.store.record(self.provider)

    def _apply(self, event: BreakerEvent) -> Step:
        return self.store.apply(self.provider, event)


def notify(callback: Transition | None, provider: str, old: BreakerRecord, new: BreakerRecord) -> None:
    if callback is not None and old.state is not new.state:
        callback(provider, old.state, new.state)


class MemoryBreakerStore:
    def __init__(self, settings: BreakerSettings = BreakerSettings(), clock: Clock = time.time,
                 on_transition: Transition | None = None):
        self.settings = settings
        self.now = clock
        self.on_transition = on_transition
        self._records: dict[str, BreakerRecord] = {}

    def record(self, provider: str) -> BreakerRecord:
        return self._records.get(provider, EMPTY)

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        old = self._records.get(provider, EMPTY)
        result = step(old, event, self.now(), self.settings)
        if result.record is not old:
            self._records[provider] = result.record
            notify(self.on_transition, provider, old, result.record)
        return result
