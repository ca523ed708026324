import asyncio
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_ext.clock import FakeClock
from edge_ext.routing.breaker import Breaker, BreakerEvent, BreakerSettings, BreakerState, EventKind, FailureKind
from edge_ext.routing.redis_layout import COUNT_FAILURE, breaker_key
from edge_ext.routing.shared_latency import SharedLatencyTracker
from edge_ext.routing.shared_state import LocalBreakerStore, MemoryBreakerStore, RedisBreakerStore, StoreBreaker
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
C, O, H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
FAIL = BreakerEvent.failed(FailureKind.STATUS_5XX)
WALL = 1_700_000_000.0


def run_child(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- the same machine behind every backend ----------------------------------------------------
BACKENDS = {
    "in-process-breaker": lambda s, clock, path, log: Breaker(s, clock, lambda old, new: log.append((old, new))),
    "memory-store": lambda s, clock, path, log: StoreBreaker(
        MemoryBreakerStore(s, clock, lambda p, old, new: log.append((old, new))), "p"),
    "local-file-store": lambda s, clock, path, log: StoreBreaker(
        LocalBreakerStore(path, s, clock, lambda p, old, new: log.append((old, new))), "p"),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_backend_runs_the_same_machine(backend, tmp_path):
    clock, log = FakeClock(WALL), []
    b = BACKENDS[backend](BreakerSettings(), clock, tmp_path / "breakers.bin", log)
    for _ in range(5):
        assert b.allow()
        b.on_failure(FailureKind.RESET)
    assert b.state is O and b.open_until == WALL + 30 and not b.allow()
    clock.advance(30)
    assert b.allow() and not b.allow()
    b.on_success()
    assert b.allow()
    b.on_success()
    assert b.state is C
    b.on_failure(FailureKind.STATUS_429, retry_after=4)
    b.force(O, seconds=2)
    assert b.open_until == clock.now + 2
    assert log == [(C, O), (O, H), (H, C), (C, O)]


# --- LocalBreakerStore ------------------------------------------------------------------------
def test_local_store_instances_on_one_file_share_state(tmp_path):
    clock = FakeClock(WALL)
    w1, w2 = (LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(), clock) for _ in range(2))
    for _ in range(3):
        w1.apply("openai", FAIL)
    for _ in range(2):
        w2.apply("openai", FAIL)  # failures from both workers add up
    assert w1.record("openai").state is O and w2.record("openai").state is O
    clock.advance(30)
    # One probe slot across both workers.
    assert StoreBreaker(w2, "openai").allow()
    assert not StoreBreaker(w1, "openai").allow()
    assert w1.record("other").state is C


def test_local_store_times_are_the_injected_wall_clock(tmp_path):
    store = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(failure_threshold=1), FakeClock(WALL))
    store.apply("p", FAIL)
    reader = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(), FakeClock(WALL + 29))
    assert reader.record("p").open_until == WALL + 30 and reader.record("p").updated_at == WALL
    assert not StoreBreaker(reader, "p").allow()


CHILD_BREAKER = r"""
import sys
from edge_ext.routing.breaker import BreakerSettings, FailureKind
from edge_ext.routing.shared_state import LocalBreakerStore, StoreBreaker
path, provider, failures, threshold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
breaker = StoreBreaker(LocalBreakerStore(path, BreakerSettings(failure_threshold=threshold)), provider)
for _ in range(failures):
    breaker.on_failure(FailureKind.CONNECT_FAILURE)
print(breaker.state.value, breaker.record.failures, breaker.allow())
"""


def test_local_store_shared_between_separate_processes(tmp_path):
    path = str(tmp_path / "b.bin")
    parent = LocalBreakerStore(path, BreakerSettings())
    assert StoreBreaker(parent, "openai").allow()
    # Another OS process opens the breaker...
    assert run_child(CHILD_BREAKER, path, "openai", "5", "5") == "open 0 False"
    # ...and this one sees it open.
    assert parent.record("openai").state is O and not StoreBreaker(parent, "openai").allow()
    # The other way round.
    for _ in range(5):
        parent.apply("anthropic", FAIL)
    assert run_child(CHILD_BREAKER, path, "anthropic", "0", "5") == "open 0 False"


def test_local_store_counts_concurrent_failures_from_two_processes_exactly(tmp_path):
    path = str(tmp_path / "b.bin")
    LocalBreakerStore(path)  # create the file before the race
    procs = [subprocess.Popen([sys.executable, "-c", CHILD_BREAKER, path, "p", "3000", "1000000"], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    assert LocalBreakerStore(path).record("p").failures == 6000


def test_local_store_hot_path_writes_nothing(tmp_path, monkeypatch):
    """A healthy provider's allow + success only reads the shared file: no exclusive lock, so
    workers never queue behind each other on the request path (measured in tests/bench, not here)."""
    from edge_ext.routing import record_file

    store = LocalBreakerStore(tmp_path / "b.bin")
    breaker = StoreBreaker(store, "p")
    breaker.on_failure(FailureKind.RESET)
    breaker.on_success()
    exclusive = []
    real_flock = record_file.fcntl.flock

    def counting_flock(fd, mode):
        if mode & fcntl.LOCK_EX:
            exclusive.append(mode)
        return real_flock(fd, mode)

    monkeypatch.setattr(record_file.fcntl, "flock", counting_flock)
    for _ in range(1_000):
        assert breaker.allow()
        breaker.on_success()
    assert exclusive == []


QUIET_STORES = {
    "memory-store": lambda path, s: MemoryBreakerStore(s, FakeClock(WALL)),
    "local-file-store": lambda path, s: LocalBreakerStore(path, s, FakeClock(WALL)),
}


@pytest.mark.parametrize("backend", list(QUIET_STORES))
def test_quiet_answers_follow_every_change_of_the_record(backend, tmp_path):
    """Events that change nothing are answered from steps kept per record: each answer is the
    table's for the record as it is now, through failures, a reset and an opening."""
    store = QUIET_STORES[backend](tmp_path / "b.bin", BreakerSettings(failure_threshold=2))
    allow, success = BreakerEvent(EventKind.ALLOW), BreakerEvent(EventKind.SUCCESS)
    for _ in range(2):  # unseen, then answered quietly
        assert store.apply("p", allow).allowed and store.record("p").state is C
        assert store.apply("p", success).record == store.record("p")
    store.apply("p", FAIL)
    assert store.record("p").failures == 1
    assert store.apply("p", allow).allowed
    store.apply("p", success)  # not quiet: it resets the count
    assert store.record("p").failures == 0
    store.apply("p", FAIL)
    store.apply("p", FAIL)
    assert store.record("p").state is O and not store.apply("p", allow).allowed
    assert not store.apply("p", success).allowed and store.record("p").state is O


def test_local_store_quiet_answers_see_another_process_open_the_breaker(tmp_path):
    ours = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(failure_threshold=1))
    theirs = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(failure_threshold=1))
    assert ours.apply("p", BreakerEvent(EventKind.ALLOW)).allowed  # "p" is in no file record yet
    assert ours.apply("p", BreakerEvent(EventKind.ALLOW)).allowed
    theirs.apply("p", FAIL)
    assert not ours.apply("p", BreakerEvent(EventKind.ALLOW)).allowed


def test_local_store_quiet_answers_leave_a_breaker_past_capacity_to_its_own_store(tmp_path):
    store = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(failure_threshold=1), capacity=1)
    store.apply("a", FAIL)  # takes the only slot
    assert store.apply("b", BreakerEvent(EventKind.ALLOW)).allowed  # unwritten: answered quietly
    store.apply("b", FAIL)  # no slot left: opens in the private store
    assert store.record("b").state is O
    assert not store.apply("b", BreakerEvent(EventKind.ALLOW)).allowed


def test_local_store_reinitialises_a_foreign_file(tmp_path):
    path = tmp_path / "b.bin"
    path.write_bytes(b"not a breaker file" * 100)
    store = LocalBreakerStore(path)
    store.apply("p", FAIL)
    assert store.record("p").failures == 1


def test_local_store_beyond_capacity_keeps_a_private_breaker(tmp_path):
    store = LocalBreakerStore(tmp_path / "b.bin", BreakerSettings(failure_threshold=1), capacity=2)
    for name in ("a", "b", "c"):
        store.apply(name, FAIL)
    assert [store.record(n).state for n in "abc"] == [O, O, O]
    other = LocalBreakerStore(tmp_path / "b.bin", capacity=2)
    assert [other.record(n).state for n in "abc"] == [O, O, C]


def test_local_store_rejects_overlong_names(tmp_path):
    with pytest.raises(ValueError, match="record name"):
        LocalBreakerStore(tmp_path / "b.bin").apply("x" * 200, FAIL)


# --- shared latency ---------------------------------------------------------------------------
CHILD_LATENCY = r"""
import sys
from edge_ext.routing.shared_latency import SharedLatencyTracker
t = SharedLatencyTracker(sys.argv[1], alpha=0.5)
t.observe("p", 0.2)
print(t.ewma("p"))
"""


def test_shared_latency_across_processes(tmp_path):
    path = str(tmp_path / "lat.bin")
    clock = FakeClock()
    tracker = SharedLatencyTracker(path, alpha=0.5, clock=clock)
    tracker.observe("p", 1.0)
    assert tracker.ewma("p") == 1.0
    assert run_child(CHILD_LATENCY, path) == "0.6"  # folded into this process's sample
    assert tracker.ewma("p") == 1.0  # the snapshot is younger than max_age
    clock.advance(0.1)
    assert tracker.ewma("p") == pytest.approx(0.6) and tracker.samples("p") == 2
    assert tracker.ewma("unmeasured") is None
    tracker.observe("p", -1)  # dropped
    assert tracker.samples("p") == 2


# --- Redis ------------------------------------------------------------------------------------
class Clients:
    """Connections to one redis-server, closed at the end of the test."""

    def __init__(self, port: int):
        self.port, self.made = port, []

    def __call__(self):
        import redis.asyncio as aioredis

        client = aioredis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.made.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.made:
            await client.aclose()


@pytest.fixture
async def clients(shared_redis):
    made = Clients(shared_redis.port)
    yield made
    await made.aclose()


@pytest.fixture
async def own_clients(redis_server):
    """Clients of a server this test stops."""
    made = Clients(redis_server.port)
    yield made
    await made.aclose()


async def eventually(check, timeout: float, what: str) -> float:
    start = time.monotonic()
    for _ in range(int(timeout / 0.02) + 1):
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            break
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def replica(make_client, name, clock=None, **kwargs):
    local = MemoryBreakerStore(BreakerSettings(), clock or time.time)
    store = RedisBreakerStore(make_client(), "edge-test", name, local, **kwargs)
    store.watch(["p1", "p2", "p3", "p4"])
    return store



@pytest.mark.redis
async def test_redis_replicas_share_an_opening(clients):
    a, b = replica(clients, "A"), replica(clients, "B")
    async with a, b:
        await eventually(lambda: a.healthy and b.healthy, 2.0, "first refresh done")
        for _ in range(5):
            a.apply("p1", FAIL)
        assert a.record("p1").state is O and b.record("p1").state is C
        # B learns it from its periodic refresh (0.5 s), not from anything A awaits.
        elapsed = await eventually(lambda: b.record("p1").state is O, 2.0, "B sees A's opening")
        assert elapsed < 1.0
        assert not StoreBreaker(b, "p1").allow()
        assert abs(b.record("p1").open_until - a.record("p1").open_until) < 1e-3


@pytest.mark.redis
async def test_redis_simultaneous_failures_on_two_replicas_open_the_breaker(clients):
    a, b = replica(clients, "A"), replica(clients, "B")
    async with a, b:
        for _ in range(3):  # neither replica reaches the threshold of 5 on its own
            a.apply("p2", FAIL)
            b.apply("p2", FAIL)
        assert a.record("p2").failures == 3 and b.record("p2").failures == 3
        await eventually(lambda: a.record("p2").state is O and b.record("p2").state is O, 2.0, "both open")


@pytest.mark.redis
async def test_redis_failure_script_opens_exactly_once_under_concurrency(clients):
    c1, c2 = clients(), clients()
    key, now = breaker_key("edge-test", "race"), time.time()
    args = (5, f"{now:.6f}", f"{now + 30:.6f}", "r", 60)
    replies = await asyncio.gather(*(c.eval(COUNT_FAILURE, 1, key, *args) for c in (c1, c2) * 10))
    assert sorted(replies) == [0] * 19 + [1]
    assert (await c1.hget(key, "state")) == b"open"


@pytest.mark.redis
async def test_redis_probe_close_and_admin_force_propagate(clients):
    clock = FakeClock(WALL)
    a, b = replica(clients, "A", clock), replica(clients, "B", clock)
    async with a, b:
        for _ in range(5):
            a.apply("p3", FAIL)
        await eventually(lambda: b.record("p3").state is O, 2.0, "B adopts the opening")
        clock.advance(30)
        breaker = StoreBreaker(a, "p3")
        assert breaker.allow()
        breaker.on_success()
        assert breaker.allow()
        breaker.on_success()
        assert breaker.state is C
        assert await a.sync()
        assert (await a.redis.hget(a.key("p3"), "state")) == b"closed"
        StoreBreaker(b, "p4").force(O, seconds=600)
        await eventually(lambda: a.record("p4").state is O, 2.0, "A adopts B's forced opening")
        StoreBreaker(b, "p4").force(C)
        await eventually(lambda: a.record("p4").state is C, 2.0, "A adopts B's forced close")


@pytest.mark.redis
async def test_redis_outage_falls_back_to_local_state_and_recovers(redis_server, own_clients):
    from edge_ext.health import StoreHealth
    from edge_ext.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    health = StoreHealth("breakers", "redis", metrics.store_errors)
    a, b = replica(own_clients, "A", health=health), replica(own_clients, "B")
    async with a, b:
        await eventually(lambda: a.healthy and b.healthy, 2.0, "both replicas talk to Redis")
        redis_server.stop()
        for _ in range(5):
            a.apply("p1", FAIL)  # no exception on the hot path
        assert a.record("p1").state is O and not StoreBreaker(a, "p1").allow()
        assert StoreBreaker(b, "p1").allow()  # not shared while Redis is down, but B keeps working
        await eventually(lambda: a.errors > 0 and b.errors > 0, 3.0, "both count Redis errors")
        assert metrics.store_errors.labels(use="breakers", store="redis").value == a.errors
        assert health.failing and not a.healthy
        assert not a._task.done() and not b._task.done()

        redis_server.start()  # same port, empty data
        await eventually(lambda: a.healthy and b.healthy, 5.0, "both reconnect")
        assert not health.failing
        # A republishes the opening Redis lost; B learns it.
        await eventually(lambda: b.record("p1").state is O, 3.0, "B sees A's opening after the restart")
        for _ in range(5):
            b.apply("p2", FAIL)
        await eventually(lambda: a.record("p2").state is O, 2.0, "sharing resumes")


@pytest.mark.redis
async def test_redis_unreachable_from_the_start_never_raises():
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    store = RedisBreakerStore(client, "edge-test", "lonely", MemoryBreakerStore(BreakerSettings(failure_threshold=2)),
                              refresh_seconds=0.05)
    try:
        async with store:
            breaker = StoreBreaker(store, "p")
            assert breaker.allow()
            breaker.on_failure(FailureKind.TIMEOUT)
            breaker.on_failure(FailureKind.TIMEOUT)
            assert breaker.state is O
            await eventually(lambda: store.errors >= 2, 2.0, "errors counted")
            assert not await store.sync()
    finally:
        await client.aclose()
