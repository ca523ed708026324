"""Time-to-first-byte averages shared by the worker processes of one instance.

Same file mechanism as the local breaker store (``record_file``), its own file so that latency
samples, which arrive on every request, do not invalidate the breakers' cached snapshot. Each
sample is folded into the shared EWMA under the file lock (a few microseconds), so all workers
rank providers by the same numbers; a batch of samples (``observe_all``, the outcomes of one
access log message) takes the lock once for all of them. Reads use a snapshot at most ``max_age`` old, since a
100 ms-old average ranks providers just as well.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence

from edge_ext.clock import Clock, monotonic
from edge_ext.routing.latency import check_alpha, fold, valid_sample
from edge_ext.routing.record_file import RecordFile, RecordFileFull

_PAYLOAD = struct.Struct("<dQd")  # ewma seconds, samples, updated_at (wall clock)


class SharedLatencyTracker:
    def __init__(self, path: str | os.PathLike[str], alpha: float = 0.3, max_age: float = 0.1,
                 clock: Clock = monotonic, wall: Clock = time.time, capacity: int = 512):
        self.alpha = check_alpha(alpha)
        self._max_age = max_age
        self._clock = clock
        self._wall = wall
        self._file = RecordFile(path, _PAYLOAD, capacity, magic=b"EDGELAT1")
        self._snapshot: dict[str, tuple] = {}
        self._read_at = -float("inf")

    def observe(self, provider: str, seconds: float) -> None:
        if not valid_sample(seconds):
            return
        sample, now = float(seconds), self._wall()

        def change(row: tuple | None) -> tuple:
            previous, count = (None, 0) if row is None or row[1] == 0 else (row[0], row[1])
            return (fold(previous, sample, self.alpha), count + 1, now)

        try:
            self._snapshot[provider] = self._file.update(provider, change)
        except RecordFileFull:
            return  # past capacity the provider simply stays unmeasured, which ranks it first

    def observe_all(self, samples: Sequence[tuple[str, float]]) -> None:
        """Each sample folded in order, as ``observe`` one by one would, under one lock."""
        by_provider: dict[str, list[float]] = {}
        for provider, seconds in samples:
            if valid_sample(seconds):
                by_provider.setdefault(provider, []).append(float(seconds))
        if not by_provider:
            return
        now = self._wall()
        alpha = self.alpha

        def change(row: tuple | None, batch: list[float]) -> tuple:
            average, count = (None, 0) if row is None or row[1] == 0 else (row[0], row[1])
            for sample in batch:
                average = fold(average, sample, alpha)
            return (average, count + len(batch), now)

        changes = {provider: (lambda row, batch=batch: change(row, batch)) for provider, batch in by_provider.items()}
        # Past the file's capacity a provider simply stays unmeasured, as with ``observe``.
        self._snapshot.update(self._file.update_all(changes))

    def _rows(self) -> dict[str, tuple]:
        now = self._clock()
        if now - self._read_at >= self._max_age:
            self._snapshot = self._file.snapshot()[1]
            self._read_at = now
        return self._snapshot

    def ewma(self, provider: str) -> float | None:
        row = self._rows().get(provider)
        return None if row is None or row[1] == 0 else row[0]

    def samples(self, provider: str) -> int:
        row = self._rows().get(provider)
        return 0 if row is None else row[1]

    def close(self) -> None:
        self._file.close()
