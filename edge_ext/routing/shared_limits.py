"""Providers' rate-limit budgets shared by the worker processes of one instance.

The same file mechanism as latency (``record_file``), its own file: every answer that carries
the headers rewrites its provider's record, and a worker's own write is visible to it at once.
Other workers' writes are read from a snapshot at most ``max_age`` old (50 ms by default), so a
provider that just reported 0 remaining may get the requests another worker routes within that
time. Replicas do not share this record: each learns from the answers it gets.
"""

from __future__ import annotations

import math
import os
import struct

from edge_ext.clock import Clock, monotonic
from edge_ext.routing.ratelimits import Budget, MemoryLimits, ProviderLimits
from edge_ext.routing.record_file import RecordFile, RecordFileFull

# requests remaining, limit, reset_at; tokens remaining, limit, reset_at; observed_at. NaN: none.
_PAYLOAD = struct.Struct("<7d")
_NONE = (math.nan, math.nan, math.nan)


def _encode_budget(b: Budget | None) -> tuple[float, float, float]:
    if b is None:
        return _NONE
    return (b.remaining, math.nan if b.limit is None else b.limit, b.reset_at)


def _decode_budget(remaining: float, limit: float, reset_at: float) -> Budget | None:
    if math.isnan(remaining) or math.isnan(reset_at):
        return None
    return Budget(remaining, None if math.isnan(limit) else limit, reset_at)


def encode(limits: ProviderLimits) -> tuple:
    return (*_encode_budget(limits.requests), *_encode_budget(limits.tokens), limits.observed_at)


def decode(row: tuple | None) -> ProviderLimits | None:
    if row is None or math.isnan(row[6]):
        return None
    return ProviderLimits(_decode_budget(*row[0:3]), _decode_budget(*row[3:6]), row[6])


class SharedLimits:
    def __init__(self, path: str | os.PathLike[str], max_age: float = 0.05, clock: Clock = monotonic,
                 capacity: int = 512):
        self._file = RecordFile(path, _PAYLOAD, capacity, magic=b"EDGERLM1")
        self._max_age = max_age
        self._clock = clock
        self._snapshot: dict[str, ProviderLimits | None] = {}
        self._read_at = -math.inf
        self._overflow = MemoryLimits()

    def observe(self, provider: str, limits: ProviderLimits) -> None:
        row = encode(limits)
        try:
            self._file.update(provider, lambda _old: row)
        except RecordFileFull:
            self._overflow.observe(provider, limits)
            return
        self._snapshot[provider] = limits

    def limits(self, provider: str) -> ProviderLimits | None:
        now = self._clock()
        if now - self._read_at >= self._max_age:
            self._snapshot = {name: decode(row) for name, row in self._file.snapshot()[1].items()}
            self._read_at = now
        found = self._snapshot.get(provider)
        return found if found is not None else self._overflow.limits(provider)

    def close(self) -> None:
        self._file.close()
