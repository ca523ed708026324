"""L1: an in-process LRU bounded by entry count and by bytes, with a TTL per entry.

Every operation is O(1) on an OrderedDict (eviction pops from the old end), so nothing here can
stall the event loop. Time comes from an injected clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from edge_ext.cache.entry import Entry


class MemoryCache:
    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float], on_evict: Callable[[], None] = lambda: None):
        self._items: OrderedDict[str, tuple[Entry, float, int]] = OrderedDict()
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._bytes = 0
        self._clock = clock
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        entry, expires, _ = item
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    def set(self, key: str, entry: Entry, ttl: float) -> None:
        size = len(entry.body) + len(key)
        if size > self._max_bytes or ttl <= 0:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (entry, self._clock() + ttl, size)
        self._bytes += size
        while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self._on_evict()

    def delete(self, key: str) -> None:
        if key in self._items:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, _, size = self._items.pop(key)
        self._bytes -= size
