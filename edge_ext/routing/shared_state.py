"""Breaker state shared beyond one Breaker object: between the workers of one instance and, with
Redis, between replicas.

A ``BreakerStore`` holds one ``BreakerRecord`` per provider and applies events to it with the
pure ``breaker.step`` atomically, so every backend runs the same state machine. Times in a store
are wall-clock epoch seconds (``time.time`` by default, injected): monotonic clocks of
different processes do not share an origin. A wall-clock step (NTP) shifts open deadlines by
the size of the step, which a 30 s window tolerates.

- ``MemoryBreakerStore``: one process (tests, a single worker, the Redis store's fallback).
- ``LocalBreakerStore``: every worker process on one machine, through an mmap'd file.
- ``RedisBreakerStore`` (``edge_ext.routing.redis_store``): replicas, over a local store.

``StoreBreaker(store, provider)`` gives one provider's breaker the same API as ``Breaker``.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edge_ext.clock import Clock
from edge_ext.routing.breaker import BreakerApi, BreakerEvent, BreakerRecord, BreakerSettings, BreakerState, Step, step
from edge_ext.routing.record_file import RecordFile, RecordFileFull

if TYPE_CHECKING:
    from edge_ext.routing.redis_store import RedisBreakerStore

__all__ = ["BreakerStore", "LocalBreakerStore", "MemoryBreakerStore", "RedisBreakerStore", "StoreBreaker", "Transition"]

Transition = Callable[[str, BreakerState, BreakerState], None]  # (provider, old, new)

_EMPTY = BreakerRecord()


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


def _notify(callback: Transition | None, provider: str, old: BreakerRecord, new: BreakerRecord) -> None:
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
        return self._records.get(provider, _EMPTY)

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        old = self._records.get(provider, _EMPTY)
        result = step(old, event, self.now(), self.settings)
        if result.record is not old:
            self._records[provider] = result.record
            _notify(self.on_transition, provider, old, result.record)
        return result


# state, failures, successes, probes, open_until, probe_until, updated_at
_PAYLOAD = struct.Struct("<BIIIddd")
_STATES = tuple(BreakerState)
_STATE_CODE = {state: code for code, state in enumerate(_STATES, start=1)}


def _encode(r: BreakerRecord) -> tuple:
    return (_STATE_CODE[r.state], r.failures, r.successes, r.probes, r.open_until, r.probe_until, r.updated_at)


def _decode(row: tuple | None) -> BreakerRecord:
    if row is None or not 1 <= row[0] <= len(_STATES):
        return _EMPTY
    return BreakerRecord(_STATES[row[0] - 1], *row[1:])


class LocalBreakerStore:
    """Breakers shared by every process that opens the same file.

    Reads cost one 8-byte generation check while nothing changed (the common case: a closed
    breaker on a healthy provider); events that change nothing (success on a clean closed
    breaker, allow on a closed or still-open one) are answered from that snapshot without the
    lock. Only real changes take the exclusive lock and re-run ``step`` on the file's record.
    """

    def __init__(self, path: str | os.PathLike[str], settings: BreakerSettings = BreakerSettings(),
                 clock: Clock = time.time, on_transition: Transition | None = None, capacity: int = 512):
        self.settings = settings
        self.now = clock
        self.on_transition = on_transition
        self._file = RecordFile(path, _PAYLOAD, capacity, magic=b"EDGEBRK1")
        self._generation = -1
        self._cache: dict[str, BreakerRecord] = {}
        # Providers past the file's capacity still get a breaker, just not a shared one.
        self._overflow = MemoryBreakerStore(settings, clock, on_transition)

    @property
    def path(self) -> str:
        return self._file.path

    def record(self, provider: str) -> BreakerRecord:
        generation = self._file.generation()
        if generation != self._generation:
            generation, rows = self._file.snapshot()
            self._cache = {name: _decode(row) for name, row in rows.items()}
            self._generation = generation
        cached = self._cache.get(provider)
        return cached if cached is not None else self._overflow.record(provider)

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        now = self.now()
        current = self.record(provider)
        guess = step(current, event, now, self.settings)
        if guess.record is current:
            return guess
        outcome: list[Any] = []

        def change(row: tuple | None) -> tuple:
            old = _decode(row)
            result = step(old, event, now, self.settings)
            outcome[:] = [old, result]
            return _encode(result.record)

        try:
            self._file.update(provider, change)
        except RecordFileFull:
            return self._overflow.apply(provider, event)
        old, result = outcome
        # Our own write moved the generation; the next read re-snapshots everyone's records.
        self._cache[provider] = result.record
        _notify(self.on_transition, provider, old, result.record)
        return result

    def close(self) -> None:
        self._file.close()


def __getattr__(name: str) -> Any:
    # Imported lazily: redis_store builds on this module, and the local stores need no redis.
    if name == "RedisBreakerStore":
        from edge_ext.routing.redis_store import RedisBreakerStore

        return RedisBreakerStore
    raise AttributeError(name)
