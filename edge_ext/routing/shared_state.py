"""Breaker state shared by every worker process of one instance, through an mmap'd file
(``record_file``): the ``LocalBreakerStore`` the wiring builds (edge_ext.wiring) and hands the
router as its ``BreakerStore`` (edge_ext.routing.breaker_store, with the in-process store).

Times in a shared store are wall-clock epoch seconds (``time.time`` by default, injected):
monotonic clocks of different processes do not share an origin. A wall-clock step (NTP) shifts
open deadlines by the size of the step, which a 30 s window tolerates.
"""

from __future__ import annotations

import os
import struct
import time
from typing import TYPE_CHECKING, Any

from edge_ext.clock import Clock
from edge_ext.routing.breaker import BreakerEvent, BreakerRecord, BreakerSettings, BreakerState, Step, step
from edge_ext.routing.breaker_store import EMPTY as _EMPTY
from edge_ext.routing.breaker_store import BreakerStore, MemoryBreakerStore, Quiet, StoreBreaker, Transition, quiet_steps
from edge_ext.routing.breaker_store import notify as _notify
from edge_ext.routing.record_file import RecordFile, RecordFileFull

if TYPE_CHECKING:
    from edge_ext.routing.redis_store import RedisBreakerStore

__all__ = ["BreakerStore", "LocalBreakerStore", "MemoryBreakerStore", "RedisBreakerStore", "StoreBreaker", "Transition"]


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
    lock: the ones that never depend on the time (``breaker.QUIET``) by a lookup, the others by
    ``step``. Only real changes take the exclusive lock and re-run ``step`` on the file's record.
    """

    def __init__(self, path: str | os.PathLike[str], settings: BreakerSettings = BreakerSettings(),
                 clock: Clock = time.time, on_transition: Transition | None = None, capacity: int = 512):
        self.settings = settings
        self.now = clock
        self.on_transition = on_transition
        self._file = RecordFile(path, _PAYLOAD, capacity, magic=b"EDGEBRK1")
        self._generation = -1
        self._cache: dict[str, BreakerRecord] = {}
        self._quiet: Quiet = {}  # of the records in _cache and the unwritten ones, as of _generation
        # Providers asked about that have no record in the file (healthy since it was made) and
        # none in the overflow store: their record is EMPTY, answered quietly too.
        self._unwritten: set[str] = set()
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
            self._requiet()
            self._generation = generation
        cached = self._cache.get(provider)
        return cached if cached is not None else self._overflow.record(provider)

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        if self._file.generation() == self._generation:
            quiet = self._quiet.get((provider, event.kind))
            if quiet is not None:
                return quiet
        now = self.now()
        current = self.record(provider)
        guess = step(current, event, now, self.settings)
        if guess.record is current:
            if current is _EMPTY and provider not in self._cache and not self._overflow.holds(provider):
                self._unwritten.add(provider)
                self._requiet()
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
            if provider in self._unwritten:  # its record lives in the overflow store from now on
                self._unwritten.discard(provider)
                self._requiet()
            return self._overflow.apply(provider, event)
        old, result = outcome
        # Our own write moved the generation; the next read re-snapshots everyone's records.
        self._cache[provider] = result.record
        self._requiet()
        _notify(self.on_transition, provider, old, result.record)
        return result

    def _requiet(self) -> None:
        records = dict.fromkeys(self._unwritten, _EMPTY)
        records.update(self._cache)
        self._quiet = quiet_steps(records)

    def close(self) -> None:
        self._file.close()


def __getattr__(name: str) -> Any:
    # Imported lazily: redis_store builds on this module, and the local stores need no redis.
    if name == "RedisBreakerStore":
        from edge_ext.routing.redis_store import RedisBreakerStore

        return RedisBreakerStore
    raise AttributeError(name)
