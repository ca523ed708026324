"""L2 stores shared by every worker of an instance: Redis when configured, else a local disk cache.

Both speak bytes (``Entry.encode``). Reads have a time budget; failures of any kind raise
``StoreError``, which the tiered cache turns into a miss, never an error for the request. Writes
run in the background.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class SharedStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def lock(self, key: str, ttl: float) -> bool:
        """Atomically claim ``key`` for ``ttl`` seconds; False when someone else holds it."""
        ...

    async def unlock(self, key: str) -> None: ...


_LOCK = "lock:"


class StoreError(Exception):
    """An L2 store failed; the request carries on as a miss."""


class DiskStore:
    """diskcache: SQLite, safe across processes, with its own LRU size limit. Rows are str keys
    and bytes values only (``PlainDisk``): nothing read back is ever unpickled.

    A read is a local SQLite lookup of tens of microseconds: done inline. Writes touch the disk
    and go to a thread. SQLite takes one writer at a time, and a writer that finds the database
    locked sleeps in steps of up to 100 ms: with 16 misses at once over two workers, a lock took
    230-800 ms at p99 and up to 2 s, past Envoy's message deadline (a 504). A lock, on the
    request path, is bounded by ``lock_budget_s`` as Redis's is by its read budget: slower, the
    request fetches without it.
    """

    name = "disk"

    def __init__(self, directory: str, size_limit: int, lock_budget_s: float = 0.1):
        import diskcache

        from edge_ext.cache.disk import PlainDisk

        self._cache = diskcache.Cache(directory, disk=PlainDisk, size_limit=size_limit,
                                      eviction_policy="least-recently-used")
        self._lock_budget = lock_budget_s
        self._late: set[asyncio.Future] = set()  # late claims, then their unlocks

    async def get(self, key: str) -> bytes | None:
        try:
            return self._cache.get(key)
        except Exception as exc:  # sqlite3 errors surface as several types
            raise StoreError(f"disk cache read failed: {exc}") from exc

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await asyncio.to_thread(self._cache.set, key, value, expire=ttl)
        except Exception as exc:
            raise StoreError(f"disk cache write failed: {exc}") from exc

    async def lock(self, key: str, ttl: float) -> bool:
        # diskcache.add is atomic across processes (one SQLite transaction).
        attempt = asyncio.ensure_future(asyncio.to_thread(self._cache.add, _LOCK + key, b"1", expire=ttl))
        try:
            async with asyncio.timeout(self._lock_budget):
                return await asyncio.shield(attempt)
        except TimeoutError as exc:
            # The caller fetches without the lock; one the attempt takes later is nobody's.
            self._abandon(attempt, key)
            raise StoreError(f"disk cache lock slower than {self._lock_budget * 1000:.0f} ms") from exc
        except asyncio.CancelledError:
            self._abandon(attempt, key)  # the request is gone: it leads no fetch
            raise
        except Exception as exc:
            raise StoreError(f"disk cache lock failed: {exc}") from exc

    def _abandon(self, attempt: asyncio.Future, key: str) -> None:
        self._late.add(attempt)
        attempt.add_done_callback(lambda done: self._drop_late(done, key))

    def _drop_late(self, attempt: asyncio.Future, key: str) -> None:
        self._late.discard(attempt)
        if not attempt.cancelled() and attempt.exception() is None and attempt.result():
            task = asyncio.ensure_future(self.unlock(key))
            self._late.add(task)
            task.add_done_callback(self._dropped)

    def _dropped(self, task: asyncio.Future) -> None:
        self._late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed unlock leaves the lock to its ttl, as any does

    async def unlock(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._cache.delete, _LOCK + key)
        except Exception as exc:
            raise StoreError(f"disk cache unlock failed: {exc}") from exc

    def close(self) -> None:
        self._cache.close()


class RedisStore:
    """Entries in Redis, one string key each (any client from edge_ext.redis_clients: one server,
    Sentinel or Cluster). Reads and locks, on the request path, are bounded by the read budget;
    the client's own timeouts bound the writes, and it reconnects by itself once Redis is back."""

    name = "redis"

    def __init__(self, redis: Any, read_budget_s: float, namespace: str = "edge-ext:cache:"):
        self._redis, self._budget, self._namespace = redis, read_budget_s, namespace

    async def get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self._budget):
                return await self._redis.get(self._namespace + key)
        except Exception as exc:  # timeouts, connection refused, failover, protocol errors
            raise StoreError(f"redis read failed: {type(exc).__name__}: {exc}") from exc

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._redis.set(self._namespace + key, value, ex=max(1, int(ttl)))
        except Exception as exc:
            raise StoreError(f"redis write failed: {type(exc).__name__}: {exc}") from exc

    async def lock(self, key: str, ttl: float) -> bool:
        try:
            # SET NX: one replica wins. On the request path, like a read: within the read budget.
            async with asyncio.timeout(self._budget):
                return bool(await self._redis.set(self._namespace + _LOCK + key, b"1", ex=max(1, int(ttl)), nx=True))
        except Exception as exc:
            raise StoreError(f"redis lock failed: {type(exc).__name__}: {exc}") from exc

    async def unlock(self, key: str) -> None:
        try:
            await self._redis.delete(self._namespace + _LOCK + key)
        except Exception as exc:
            raise StoreError(f"redis unlock failed: {type(exc).__name__}: {exc}") from exc
