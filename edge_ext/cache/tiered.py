"""L1 in process, then the shared L2. Writes to L2 never delay the response; an L2 failure is a
miss, counted and logged by its ``StoreHealth`` (edge_ext.health)."""

from __future__ import annotations

import asyncio

from edge_ext.cache.entry import Entry
from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.shared import SharedStore, StoreError
from edge_ext.health import StoreHealth


class TieredCache:
    def __init__(self, l1: MemoryCache, l2: SharedStore | None, l1_ttl: float, l2_ttl: float,
                 health: StoreHealth | None = None):
        self.l1, self.l2 = l1, l2
        self.l1_ttl, self.l2_ttl = l1_ttl, l2_ttl
        self._health = health or StoreHealth("cache", l2.name if l2 else "none")
        self._writes: set[asyncio.Task] = set()

    async def get(self, key: str) -> tuple[Entry | None, str]:
        entry = self.l1.get(key)
        if entry is not None:
            return entry, "hit-l1"
        if self.l2 is None:
            return None, "miss"
        try:
            data = await self.l2.get(key)
        except StoreError as exc:
            self._health.failed(exc)
            return None, "miss"
        self._health.ok()
        entry = Entry.decode(data) if data else None
        if entry is None:
            return None, "miss"
        self.l1.set(key, entry, self.l1_ttl)
        return entry, "hit-l2"

    async def claim(self, key: str, ttl: float) -> bool:
        """Become the one caller (across workers and replicas) that fetches ``key``.

        Without an L2, or when it fails, every caller fetches: a lock must never cost an answer.
        """
        if self.l2 is None:
            return True
        try:
            return await self.l2.lock(key, ttl)
        except StoreError as exc:
            self._health.failed(exc)
            return True

    def release(self, key: str) -> None:
        if self.l2 is not None:
            self._background(self._unlock(key))

    async def _unlock(self, key: str) -> None:
        try:
            await self.l2.unlock(key)
        except StoreError as exc:
            self._health.failed(exc)

    async def wait_for(self, key: str, max_wait: float, poll_s: float = 0.05) -> Entry | None:
        """Poll L2 for the entry another worker or replica is fetching."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while loop.time() < deadline:
            await asyncio.sleep(poll_s)
            entry, tier = await self.get(key)
            if entry is not None:
                return entry
        return None

    def _background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def put(self, key: str, entry: Entry, ttl: float | None = None) -> None:
        self.l1.set(key, entry, min(ttl, self.l1_ttl) if ttl is not None else self.l1_ttl)
        if self.l2 is not None:
            self._background(self._write(key, entry.encode(), ttl or self.l2_ttl))

    async def _write(self, key: str, data: bytes, ttl: float) -> None:
        try:
            await self.l2.set(key, data, ttl)
        except StoreError as exc:
            self._health.failed(exc)

    async def drain(self) -> None:
        """Wait for background writes (tests, shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
