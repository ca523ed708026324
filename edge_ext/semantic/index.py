"""The in-process index of one worker: an HNSW graph (usearch) per partition, bounded by entries
and bytes, with a TTL per entry.

One graph per partition makes the partition an exact filter: a search never sees another
tenant's or another parameter set's entries, and a crowded partition cannot push a small one's
neighbours out of the top k. Eviction is least-recently-used across all partitions; a removed
entry's slot in its graph is reused by the next insert there, so memory stays within the peak.
Time comes from an injected clock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from usearch.index import Index

from edge_ext.cache.entry import Entry

# What one entry costs beyond its answer, text and vector: graph links and bookkeeping; and what
# a partition's graph costs while it holds anything (measured: about 45 KiB resident).
_OVERHEAD_BYTES = 512
_PARTITION_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    partition: str
    text: str
    entry: Entry
    tenant: str  # namespace and model: what an operator purges by
    model: str


@dataclass(frozen=True, slots=True)
class Match:
    similarity: float
    record: Record


def unit(vector: Iterable[float]) -> np.ndarray | None:
    """The vector scaled to length 1 as float32; None for a zero or non-finite vector."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v))
    if not v.size or not np.isfinite(norm) or norm == 0.0:
        return None
    return v / norm


class _Partition:
    __slots__ = ("graph", "ids")

    def __init__(self, ndim: int):
        # Half precision: similarities to about 1e-3, half the memory and faster searches than f32.
        self.graph = Index(ndim=ndim, metric="cos", dtype="f16")
        self.ids: set[int] = set()


class LocalIndex:
    def __init__(self, max_entries: int, max_bytes: int, ttl_s: float, clock: Callable[[], float],
                 on_evict: Callable[[], None] = lambda: None):
        self._max_entries, self._max_bytes, self._ttl = max_entries, max_bytes, ttl_s
        self._clock, self._on_evict = clock, on_evict
        self._parts: dict[str, _Partition] = {}
        # id -> (record, expires, size), least recently used first.
        self._items: OrderedDict[int, tuple[Record, float, int]] = OrderedDict()
        self._ids = itertools.count(1)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def add(self, vector: np.ndarray, record: Record, ttl_s: float | None = None) -> None:
        ttl = min(ttl_s, self._ttl) if ttl_s is not None else self._ttl
        size = len(record.entry.body) + len(record.text) + vector.size * 2 + _OVERHEAD_BYTES  # f16 in the graph
        if ttl <= 0 or size > self._max_bytes:
            return
        part = self._parts.get(record.partition)
        if part is not None and part.graph.ndim != vector.size:
            # Another embedding model since: the old vectors cannot be compared with the new.
            self._drop_partition(record.partition)
            part = None
        if part is None:
            part = self._parts[record.partition] = _Partition(vector.size)
            self._bytes += _PARTITION_BYTES
        key = next(self._ids)
        part.graph.add(key, vector, threads=1)
        part.ids.add(key)
        self._items[key] = (record, self._clock() + ttl, size)
        self._bytes += size
        while self._items and (len(self._items) > self._max_entries or self._bytes > self._max_bytes):
            self._remove(next(iter(self._items)))
            self._on_evict()

    def search(self, partition: str, vector: np.ndarray, count: int = 4) -> list[Match]:
        """Up to ``count`` live entries of ``partition``, most similar first."""
        part = self._parts.get(partition)
        if part is None or part.graph.ndim != vector.size:
            return []
        found = part.graph.search(vector, count, threads=1)
        now, matches = self._clock(), []
        for key, distance in zip(found.keys.tolist(), found.distances.tolist()):
            item = self._items.get(key)
            if item is None:
                continue
            record, expires, _ = item
            if now >= expires:
                self._remove(key)
                continue
            self._items.move_to_end(key)
            matches.append(Match(1.0 - distance, record))
        return matches

    def purge(self, tenant: str | None, model: str | None) -> int:
        """Removes the entries of ``tenant`` and ``model`` (None: any); returns how many."""
        doomed = [key for key, (record, _, _) in self._items.items()
                  if (tenant is None or record.tenant == tenant) and (model is None or record.model == model)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: int) -> None:
        record, _, size = self._items.pop(key)
        self._bytes -= size
        part = self._parts[record.partition]
        part.ids.discard(key)
        if part.ids:
            part.graph.remove(key)
        else:
            del self._parts[record.partition]
            self._bytes -= _PARTITION_BYTES

    def _drop_partition(self, partition: str) -> None:
        for key in list(self._parts[partition].ids):
            record, _, size = self._items.pop(key)
            self._bytes -= size
        del self._parts[partition]
        self._bytes -= _PARTITION_BYTES
