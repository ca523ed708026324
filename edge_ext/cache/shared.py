"""L2 stores shared by every worker of an instance: Redis when configured, else a local disk cache.

Both speak bytes (``Entry.encode``). Reads have a time budget; failures of any kind raise
``StoreError``, which the tiered cache turns into a miss, never an error for the request. Writes
run in the background.
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from urllib.parse import urlsplit


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
    and go to a thread.
    """

    name = "disk"

    def __init__(self, directory: str, size_limit: int):
        import diskcache

        from edge_ext.cache.disk import PlainDisk

        self._cache = diskcache.Cache(directory, disk=PlainDisk, size_limit=size_limit,
                                      eviction_policy="least-recently-used")

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
        try:
            # diskcache.add is atomic across processes (one SQLite transaction).
            return await asyncio.to_thread(self._cache.add, _LOCK + key, b"1", expire=ttl)
        except Exception as exc:
            raise StoreError(f"disk cache lock failed: {exc}") from exc

    async def unlock(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._cache.delete, _LOCK + key)
        except Exception as exc:
            raise StoreError(f"disk cache unlock failed: {exc}") from exc

    def close(self) -> None:
        self._cache.close()


class RedisStore:
    """Redis through aiocache; redis-py reconnects by itself once Redis is back."""

    name = "redis"

    def __init__(self, url: str, read_budget_s: float, write_timeout_s: float = 1.0, namespace: str = "edge-ext:cache:"):
        from aiocache import RedisCache
        from aiocache.serializers import BaseSerializer

        class BytesSerializer(BaseSerializer):
            # aiocache decodes values as UTF-8 unless the serializer says otherwise; entries are
            # binary (zlib), so no encoding at all.
            DEFAULT_ENCODING = None

            def dumps(self, value: bytes) -> bytes:
                return value

            def loads(self, value: bytes | None) -> bytes | None:
                return value

        parts = urlsplit(url)
        self._cache = RedisCache(
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(parts.path.lstrip("/") or 0),
            password=parts.password,
            serializer=BytesSerializer(),
            namespace=namespace,
            timeout=read_budget_s,
            create_connection_timeout=read_budget_s,
        )
        self._write_timeout = write_timeout_s

    async def get(self, key: str) -> bytes | None:
        try:
            return await self._cache.get(key)
        except Exception as exc:  # timeouts, connection refused, protocol errors
            raise StoreError(f"redis read failed: {type(exc).__name__}: {exc}") from exc

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._cache.set(key, value, ttl=max(1, int(ttl)), timeout=self._write_timeout)
        except Exception as exc:
            raise StoreError(f"redis write failed: {type(exc).__name__}: {exc}") from exc

    async def lock(self, key: str, ttl: float) -> bool:
        try:
            # aiocache's add is SET NX: one replica wins.
            await self._cache.add(_LOCK + key, b"1", ttl=max(1, int(ttl)))
            return True
        except ValueError:
            return False
        except Exception as exc:
            raise StoreError(f"redis lock failed: {type(exc).__name__}: {exc}") from exc

    async def unlock(self, key: str) -> None:
        try:
            await self._cache.delete(_LOCK + key, timeout=self._write_timeout)
        except Exception as exc:
            raise StoreError(f"redis unlock failed: {type(exc).__name__}: {exc}") from exc
