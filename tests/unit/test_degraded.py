"""Degraded modes: a failing store is counted on every failure and logged once, then at most once
a minute, then once when it answers again; the worker carries on. Real Redis, stopped mid-test."""

import logging

import pytest

from edge_ext.clock import FakeClock
from edge_ext.errors import KeyStoreUnavailable
from edge_ext.health import StoreHealth
from edge_ext.metrics import WorkerMetrics


def health_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edge_ext.health"]


def errors(metrics: WorkerMetrics, use: str, store: str = "redis") -> float:
    return metrics.store_errors.labels(use=use, store=store).value


def test_a_failing_store_is_counted_every_time_and_logged_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger="edge_ext.health")
    metrics, clock = WorkerMetrics(), FakeClock()
    health = StoreHealth("breakers", "redis", metrics.store_errors, clock=clock)
    for _ in range(50):
        health.failed(ConnectionError("refused"))
        clock.advance(1)
    assert errors(metrics, "breakers") == 50 and health.failing
    lines = health_lines(caplog)
    assert len(lines) == 1 and "redis store failing (ConnectionError: refused)" in lines[0]
    assert "each replica decides its breakers alone" in lines[0]
    clock.advance(10)
    health.failed(TimeoutError("slow"))  # a minute after the first line
    assert "still failing, 50 errors in 60 s (last: TimeoutError: slow)" in health_lines(caplog)[-1]
    health.ok()
    health.ok()
    assert health_lines(caplog)[2:] == ["breakers: redis store answers again after 51 errors in 60 s"]
    health.failed(ConnectionError("refused"))  # a new outage is reported at once
    assert len(health_lines(caplog)) == 4 and not health_lines(caplog)[-1].startswith("breakers: redis store still")


async def test_redis_cache_tier_down_is_a_counted_miss_and_comes_back(redis_server, caplog):
    from edge_ext.cache.entry import Entry
    from edge_ext.cache.memory import MemoryCache
    from edge_ext.cache.shared import RedisStore
    from edge_ext.cache.tiered import TieredCache

    caplog.set_level(logging.INFO, logger="edge_ext.health")
    metrics = WorkerMetrics()
    cache = TieredCache(MemoryCache(0, 0, FakeClock()), RedisStore(redis_server.client(200), 0.2), 60, 60,
                        health=StoreHealth("cache", "redis", metrics.store_errors))
    entry = Entry(body=b"{}", stored_at=1.0, api="openai", provider="p")
    cache.put("k", entry)
    await cache.drain()
    assert (await cache.get("k"))[1] == "hit-l2"
    redis_server.stop()
    for _ in range(3):
        assert await cache.get("k") == (None, "miss")
    assert errors(metrics, "cache") == 3
    assert len(health_lines(caplog)) == 1 and "treating lookups as misses" in health_lines(caplog)[0]
    redis_server.start()  # empty
    assert await cache.get("k") == (None, "miss")
    assert "cache: redis store answers again after 3 errors" in health_lines(caplog)[-1]


async def test_redis_key_store_down_refuses_unknown_keys_counted_and_logged(redis_server, caplog):
    import redis

    from edge_ext.auth import hash_key
    from edge_ext.auth_redis import RedisKeyStore

    caplog.set_level(logging.INFO, logger="edge_ext.health")
    metrics = WorkerMetrics()
    redis.Redis(port=redis_server.port).hset("keys:" + hash_key("sk-a"), mapping={"id": "a", "tenant": "t"})
    store = RedisKeyStore(redis_server.client(), "keys:", FakeClock(), health=StoreHealth("client_keys", "redis", metrics.store_errors))
    assert (await store.lookup(hash_key("sk-a"))).key_id == "a"
    redis_server.stop()
    for _ in range(2):
        with pytest.raises(KeyStoreUnavailable):
            await store.lookup(hash_key("sk-b"))
    assert errors(metrics, "client_keys") == 2
    assert store.cached(hash_key("sk-a"))[1].key_id == "a"  # a key checked before the outage still works
    assert len(health_lines(caplog)) == 1 and "keys not cached in the worker are refused" in health_lines(caplog)[0]


async def test_redis_ledger_outage_is_counted_and_spend_a_stopping_worker_cannot_write_is_logged(
        redis_server, tmp_path, caplog):
    from decimal import Decimal

    from edge_ext.cost.ledger_api import Hold
    from edge_ext.cost.ledgers import DiskLedger, RedisLedger

    caplog.set_level(logging.INFO)
    metrics = WorkerMetrics()
    ledger = RedisLedger(redis_server.client(200), DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2,
                         health=StoreHealth("budgets", "redis", metrics.store_errors))
    now = 1795737600.0
    hold = Hold("tenant:t", "p", "h", Decimal("0.30"), now + 600, due=True)
    assert (await ledger.reserve(hold, Decimal("1"), now))[0]
    redis_server.stop()
    await ledger.settle(hold, Decimal("0.25"), estimated=False)  # queued for Redis
    assert (await ledger.totals("tenant:t", "p", now)).spent == Decimal("0.25")
    assert await ledger.take("tpm:k:1", 10, 100, 120) == (True, 0)  # the local ledger's window
    assert errors(metrics, "budgets") == 3
    assert len(health_lines(caplog)) == 1 and "budgets: redis store failing" in health_lines(caplog)[0]
    await ledger.aclose()
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert lost == ["budget spend not written to Redis, lost with this worker: edge-ext:spend:{tenant:t:p} 0.250000 USD "
                    "(add it to that key once Redis is back)"]


async def test_redis_ledger_writes_what_it_kept_when_its_worker_stops_after_the_outage(redis_server, tmp_path, caplog):
    from decimal import Decimal

    from edge_ext.cost.ledger_api import Hold
    from edge_ext.cost.ledgers import DiskLedger, RedisLedger

    caplog.set_level(logging.INFO)
    ledger = RedisLedger(redis_server.client(200), DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    now = 1795737600.0
    redis_server.pause()
    try:
        hold = Hold("tenant:t", "p", "h", Decimal("0.30"), now + 600, due=True)
        assert (await ledger.reserve(hold, Decimal("1"), now))[0]  # a hold of this replica's
        await ledger.settle(hold, Decimal("0.10"), estimated=False)  # its spend, kept for Redis
    finally:
        redis_server.resume()
    await ledger.aclose()
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "budgets: redis store answers again" in health_lines(caplog)[-1]
    other = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path / "other")), fail_open=False)
    assert (await other.totals("tenant:t", "p", now)).spent == Decimal("0.10")


async def test_a_stopping_worker_writes_what_it_kept_when_redis_answers_a_second_later(redis_server, tmp_path, caplog):
    import asyncio
    from decimal import Decimal

    from edge_ext.cost.ledger_api import Hold
    from edge_ext.cost.ledgers import DiskLedger, RedisLedger

    caplog.set_level(logging.INFO)
    ledger = RedisLedger(redis_server.client(200), DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    now = 1795737600.0
    redis_server.pause()
    hold = Hold("tenant:t", "p", "h", Decimal("0.30"), now + 600, due=True)
    assert (await ledger.reserve(hold, Decimal("1"), now))[0]
    await ledger.settle(hold, Decimal("0.10"), estimated=False)  # kept for Redis
    # Redis answers again while the worker stops (a cluster's new primary found a moment later).
    asyncio.get_running_loop().call_later(1.0, redis_server.resume)
    await ledger.aclose()
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]
    other = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path / "other")), fail_open=False)
    assert (await other.totals("tenant:t", "p", now)).spent == Decimal("0.10")
