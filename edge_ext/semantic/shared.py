"""The shared tier: Redis vector search (Redis 8, or Redis Stack's RediSearch), seen by every
worker and replica.

One HNSW index per vector size; each entry a hash holding its partition (a TAG: the search is
filtered to it before the nearest neighbours are taken), the prompt text for the guard, the
answer (``Entry.encode``) and the vector, with the entry's TTL. Keys carry digests of the tenant
namespace and the model, so a purge is a SCAN by pattern.

A Redis without vector search (a plain Redis 7) is found out once and the tier turns itself off,
saying so once. Redis down or slow is a miss, counted and logged by its StoreHealth
(edge_ext.health); redis-py reconnects by itself when it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_ext.cache.shared import StoreError
from edge_ext.health import StoreHealth

log = logging.getLogger("edge_ext.semantic")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Found:
    similarity: float
    text: str
    entry: bytes
    vector: np.ndarray
    tenant: str
    model: str


class SharedVectors:
    def __init__(self, redis: Any, read_budget_s: float, health: StoreHealth | None = None, prefix: str = "edge-ext:sem:"):
        # Any client of edge_ext.redis_clients (binary values: vectors, compressed answers).
        self._redis, self._budget = redis, read_budget_s
        self._prefix = prefix
        self.health = health or StoreHealth("semantic", "redis")
        self._indexes: set[int] = set()
        self.supported: bool | None = None  # None until the server was asked

    def _index(self, dims: int) -> str:
        return f"{self._prefix}idx:{dims}"

    def _keys(self, dims: int) -> str:
        return f"{self._prefix}{dims}:"

    async def _usable(self) -> bool:
        if self.supported is None:
            try:
                await self._redis.execute_command("FT._LIST")
                self.supported = True
            except Exception as exc:
                if _unknown_command(exc):
                    self.supported = False
                    log.warning("the cache's Redis has no vector search (Redis 8 or Redis Stack needed): semantic "
                                "entries stay in each worker's own index")
                else:
                    raise
        return self.supported

    async def search(self, partition: str, vector: np.ndarray, count: int = 4) -> list[Found]:
        try:
            async with asyncio.timeout(self._budget):  # on the request path, like the exact cache's reads
                if not await self._ready(vector.size):
                    return []
                reply = await self._redis.execute_command(
                    "FT.SEARCH", self._index(vector.size), f"(@p:{{{partition}}})=>[KNN {count} @v $vec AS d]",
                    "PARAMS", "2", "vec", vector.astype(np.float32).tobytes(), "SORTBY", "d",
                    "RETURN", "6", "x", "e", "v", "t", "m", "d", "LIMIT", "0", str(count), "DIALECT", "2")
            found = _parse(reply)
        except Exception as exc:  # timeouts, connection refused, failover, protocol errors, a reply not understood
            self.health.failed(exc)
            return []
        self.health.ok()
        return found

    async def put(self, partition: str, vector: np.ndarray, text: str, entry: bytes, tenant: str, model: str,
                  ttl_s: float) -> None:
        try:
            if not await self._ready(vector.size):
                return
            key = f"{self._keys(vector.size)}{digest(tenant)}:{digest(model)}:{uuid.uuid4().hex}"
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"p": partition, "x": text.encode(), "e": entry, "t": tenant.encode(),
                                        "m": model.encode(), "v": vector.astype(np.float32).tobytes()})
                pipe.expire(key, max(1, int(ttl_s)))
                await pipe.execute()
        except Exception as exc:
            self.health.failed(exc)

    async def purge(self, tenant: str | None, model: str | None) -> int:
        pattern = f"{self._prefix}*:{digest(tenant) if tenant else '*'}:{digest(model) if model else '*'}:*"
        removed = 0
        try:
            batch = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                if b":idx:" in key:
                    continue
                batch.append(key)
                if len(batch) >= 500:
                    removed += await self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self._redis.unlink(*batch)
        except Exception as exc:
            raise StoreError(f"semantic redis purge failed: {type(exc).__name__}: {exc}") from exc
        return removed

    async def _ready(self, dims: int) -> bool:
        if not await self._usable():
            return False
        if dims in self._indexes:
            return True
        try:
            await self._redis.execute_command(
                "FT.CREATE", self._index(dims), "ON", "HASH", "PREFIX", "1", self._keys(dims), "SCHEMA",
                "p", "TAG", "v", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE")
        except Exception as exc:
            if "already exists" not in str(exc).lower():
                raise
        self._indexes.add(dims)
        return True


def _unknown_command(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unknown command" in text or "unknown subcommand" in text


def _documents(reply) -> list[dict]:
    """Each document's fields from FT.SEARCH's reply: in RESP3 (redis-py 8's default) a map whose
    ``results`` hold ``extra_attributes``; in RESP2 the total, then key and [field, value, ...]."""
    if isinstance(reply, dict):
        return [doc.get(b"extra_attributes") or {} for doc in reply.get(b"results") or ()]
    return [dict(zip(fields[::2], fields[1::2])) for fields in reply[2::2]]


def _parse(reply) -> list[Found]:
    found = []
    for values in _documents(reply):
        try:
            # The index's COSINE distance is 1 - cosine similarity.
            found.append(Found(1.0 - float(values[b"d"]), values[b"x"].decode(), values[b"e"],
                               np.frombuffer(values[b"v"], dtype=np.float32), values[b"t"].decode(), values[b"m"].decode()))
        except (KeyError, ValueError, UnicodeDecodeError):
            continue
    return found
