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
from collections.abc import Callable, Mapping
from typing import Protocol

from edge_ext.clock import Clock
from edge_ext.routing.breaker import (
    ALLOW, QUIET, SUCCESS, BreakerApi, BreakerEvent, BreakerRecord, BreakerSettings, BreakerState, EventKind, Step, step,
)

__all__ = ["EMPTY", "BreakerStore", "MemoryBreakerStore", "Quiet", "StoreBreaker", "Transition", "notify", "quiet_steps"]

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

    # The two events of every request and answer, a call shorter than through ``_apply``.
    def allow(self) -> bool:
        return self.store.apply(self.provider, ALLOW).allowed

    def on_success(self) -> None:
        self.store.apply(self.provider, SUCCESS)


def notify(callback: Transition | None, provider: str, old: BreakerRecord, new: BreakerRecord) -> None:
    if callback is not None and old.state is not new.state:
        callback(provider, old.state, new.state)


Quiet = dict[tuple[str, EventKind], Step]


def quiet_steps(records: Mapping[str, BreakerRecord]) -> Quiet:
    """(provider, event kind) -> the Step ``step`` gives for the provider's record and any event
    of that kind, for the pairs of ``breaker.QUIET`` (no counters, any time): each the same
    record, unchanged. A store answers those events by one lookup, without reading its clock or
    running the table, and builds this again whenever a record changes."""
    return {(provider, kind): Step(record, allowed)
            for provider, record in records.items() if not (record.failures or record.successes or record.probes)
            for (state, kind), allowed in QUIET.items() if state is record.state}


class MemoryBreakerStore:
    def __init__(self, settings: BreakerSettings = BreakerSettings(), clock: Clock = time.time,
                 on_transition: Transition | None = None):
        self.settings = settings
        self.now = clock
        self.on_transition = on_transition
        self._records: dict[str, BreakerRecord] = {}
        self._quiet: Quiet = {}

    def record(self, provider: str) -> BreakerRecord:
        return self._records.get(provider, EMPTY)

    def holds(self, provider: str) -> bool:
        """Whether an event for ``provider`` was applied here."""
        return provider in self._records

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        quiet = self._quiet.get((provider, event.kind))
        if quiet is not None:
            return quiet
        old = self._records.get(provider)
        if old is None:  # first seen: a closed breaker, from now on answered quietly too
            old = self._records[provider] = EMPTY
            self._quiet = quiet_steps(self._records)
        result = step(old, event, self.now(), self.settings)
        if result.record is not old:
            self._records[provider] = result.record
            self._quiet = quiet_steps(self._records)
            notify(self.on_transition, provider, old, result.record)
        return result
