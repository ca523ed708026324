"""Every store that keeps shared state in Redis works on every kind of Redis the `redis` section
names: one server, one server over TLS (client certificate, trustme CA), a Redis Cluster of 3
primaries with a replica each, and a Sentinel-managed primary. Real servers, the workers' own
clients (edge_ext.redis_clients).

The ledger fails closed here, so a script whose keys span cluster slots (CROSSSLOT) would fail
the test instead of taking the degraded path.
"""

from __future__ import annotations

import asyncio
import gc
import time
from decimal import Decimal

import pytest

from edge_ext.auth_redis import RedisKeyStore
from edge_ext.cache.shared import RedisStore
from edge_ext.cost.ledger_api import Hold
from edge_ext.cost.ledgers import DiskLedger, RedisLedger
from edge_ext.redis_clients import MIN_REFRESH_INTERVAL_S, UNAVAILABLE
from edge_ext.routing.breaker import BreakerEvent, BreakerSettings, BreakerState, FailureKind
from edge_ext.routing.shared_state import MemoryBreakerStore, RedisBreakerStore
from tests.redis_ha import RedisClusterHA, RedisSentinelHA
from tests.redis_server import RedisServer, RedisTLSServer, connect_to

pytestmark = pytest.mark.redis

PASSWORD = "kinds-secret"


@pytest.fixture(scope="module")
def single():
    server = RedisServer()
    server.start()
    yield {"url": server.url}
    server.cleanup()


@pytest.fixture(scope="module")
def tls():
    server = RedisTLSServer()
    server.start()
    yield server.section
    server.cleanup()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ha = RedisClusterHA(PASSWORD)
    ha.start()
    password = tmp_path_factory.mktemp("cluster") / "password"
    password.write_text(PASSWORD)
    yield {**ha.section, "password_file": str(password)}
    ha.cleanup()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    ha = RedisSentinelHA(PASSWORD)
    ha.start()
    password = tmp_path_factory.mktemp("sentinel") / "password"
    password.write_text(PASSWORD)
    yield {**ha.section, "password_file": str(password)}
    ha.cleanup()


KINDS = ["single", "tls", "cluster", "sentinel"]


@pytest.fixture(params=KINDS)
def section(request):
    # Generous timeouts: these tests are about what works, not how fast.
    return {**request.getfixturevalue(request.param), "timeout_ms": 2000}


async def test_cache_entries_and_locks(section):
    store = RedisStore(connect_to(section), read_budget_s=2)
    key = f"entry-{time.monotonic_ns()}"
    await store.set(key, b"\x00binary\xff", ttl=60)
    assert await store.get(key) == b"\x00binary\xff" and await store.get(key + "-absent") is None
    assert await store.lock(key, ttl=30) and not await store.lock(key, ttl=30)
    await store.unlock(key)
    assert await store.lock(key, ttl=30)


async def test_budget_ledger_scripts_keep_their_keys_together(section, tmp_path):
    ledger = RedisLedger(connect_to(section), DiskLedger(str(tmp_path)), fail_open=False, timeout_s=2,
                         prefix=f"kinds:{time.monotonic_ns()}:")
    now = time.time()
    hold = Hold("key:k", "p", "h1", Decimal("0.4"), now + 60)
    admitted, before = await ledger.reserve(hold, Decimal("1"), now)
    assert admitted and before.spent == 0
    assert (await ledger.totals("key:k", "p", now)).held == Decimal("0.4")
    await ledger.settle(hold, Decimal("0.25"), estimated=False)
    await ledger.settle(Hold("key:k", "p", "charge", Decimal("0.5"), now + 60), Decimal("0.5"), estimated=False)
    totals = await ledger.totals("key:k", "p", now)
    assert (totals.spent, totals.held) == (Decimal("0.75"), 0)
    assert await ledger.take("tpm:k", 10, 10, 60) == (True, 0) and await ledger.take("tpm:k", 10, 10, 60) == (False, 10)
    assert await ledger.incr("tpm:k", -4, 60) == 6


async def test_breaker_state_is_shared(section):
    settings = BreakerSettings(failure_threshold=2)
    prefix = f"kinds-{time.monotonic_ns()}"
    one = RedisBreakerStore(connect_to(section), prefix, "one", MemoryBreakerStore(settings), timeout_seconds=2)
    two = RedisBreakerStore(connect_to(section), prefix, "two", MemoryBreakerStore(settings), timeout_seconds=2)
    two.watch(["p1", "p2"])
    for provider in ("p1", "p2"):  # two hashes, most likely in two slots: one pipeline
        one.apply(provider, BreakerEvent.failed(FailureKind.STATUS_5XX))
        one.apply(provider, BreakerEvent.failed(FailureKind.STATUS_5XX))
    assert await one.sync() and await two.sync()
    assert [two.record(p).state for p in ("p1", "p2")] == [BreakerState.OPEN, BreakerState.OPEN]


async def test_client_keys(section):
    client = connect_to(section)
    prefix = f"kinds-key-{time.monotonic_ns()}:"
    await client.hset(prefix + "abc", mapping={"id": "team", "tenant": "t", "models": "m1,m2"})
    store = RedisKeyStore(client, prefix, time.monotonic, timeout_s=2)
    caller = await store.lookup("abc")
    assert (caller.key_id, caller.tenant, sorted(caller.models)) == ("team", "t", ["m1", "m2"])
    assert await store.lookup("unknown") is None


async def test_tls_needs_the_configured_ca(tls):
    # The server's certificate is checked: without the CA that signed it, no connection.
    section = {**tls, "tls": {k: v for k, v in tls["tls"].items() if k != "ca_file"}, "timeout_ms": 2000}
    with pytest.raises(UNAVAILABLE):
        await connect_to(section).ping()


async def test_a_cluster_client_refreshes_its_slot_map_at_most_once_an_interval(cluster, monkeypatch):
    client = connect_to({**cluster, "timeout_ms": 2000})
    await client.ping()  # the first map
    refreshes = []
    manager = type(client.nodes_manager)
    refresh = manager.initialize

    async def counted(self, *args, **kwargs):
        refreshes.append(asyncio.get_running_loop().time())
        return await refresh(self, *args, **kwargs)

    monkeypatch.setattr(manager, "initialize", counted)
    try:
        # Each failed command asks for a refresh; within the interval they run on the last map.
        for _ in range(20):
            client._initialize = True
            assert await client.get("refresh-probe") is None
        assert refreshes == []
        await asyncio.sleep(MIN_REFRESH_INTERVAL_S)
        client._initialize = True
        assert await client.get("refresh-probe") is None
        assert len(refreshes) == 1
    finally:
        await client.aclose()


async def test_a_cluster_refresh_its_caller_left_is_not_reported_as_never_retrieved(cluster, monkeypatch):
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    client = connect_to({**cluster, "timeout_ms": 2000})
    await client.ping()
    await asyncio.sleep(MIN_REFRESH_INTERVAL_S)

    async def failing(self, *args, **kwargs):
        await asyncio.sleep(0.05)
        raise ConnectionError("cluster unreachable")

    manager = type(client.nodes_manager)
    refresh = manager.initialize
    monkeypatch.setattr(manager, "initialize", failing)
    client._initialize = True
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):  # as a cache read's budget leaves a refresh behind
            await client.get("refresh-probe")
    await asyncio.sleep(0.1)
    gc.collect()  # other tests' unclosed clients may be reported too: only tasks count here
    assert [c for c in reported if "never retrieved" in c.get("message", "")] == []
    loop.set_exception_handler(None)
    monkeypatch.setattr(manager, "initialize", refresh)
    await client.aclose()
