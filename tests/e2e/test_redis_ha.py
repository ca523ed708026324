"""A Redis primary dies under traffic through real Envoy: Redis Cluster (3 primaries, a replica
each) and Sentinel (a primary, its replica, 3 sentinels), with the password from the
environment or a file. No request fails, and no spend is lost: what the answers were charged is
what the budget ledger holds once the replica has taken over.

While the primary is gone the requests take the degraded paths: a cache miss instead of an L2
hit, spend admitted against the last known figures and kept by the worker, breakers decided
locally. The kept spend is written once Redis answers again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from decimal import Decimal

import openai
import pytest

from edge_ext.auth import hash_key
from edge_ext.cost.ledger_api import to_micros
from edge_ext.cost.ledgers import DiskLedger, RedisLedger
from tests.redis_ha import RedisClusterHA, RedisSentinelHA
from tests.redis_server import connect_to
from tests.support import edge_config, scrape, start_edge, start_mock, stop, wait_until

pytestmark = pytest.mark.redis

KEY = "sk-redis-ha-client"
PASSWORD = "redis-ha-secret-7f3e"
SCOPE, PERIOD = "key:team-ha", "total"
# Bounds of the traffic: the kill comes after WARM_UP answers; then traffic runs until the
# replica has taken over and AFTER more answers came, within MAX_REQUESTS and MAX_SECONDS.
WARM_UP, AFTER, MAX_REQUESTS, MAX_SECONDS = 30, 40, 1500, 90
CLIENTS = 3


@pytest.fixture(scope="module")
def mock():
    started = start_mock("redis-ha-mock")
    yield started
    stop(started.proc)


def config_for(tmp, mock, redis: dict) -> dict:
    providers = [{"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o"]}]
    auth = {"keys": [{"id": "team-ha", "sha256": hash_key(KEY), "tenant": "ha"}]}
    # A limit never reached: every request reserves and settles against the shared ledger.
    budgets = {"limits": [{"scope": "key", "id": "team-ha", "period": PERIOD, "limit_usd": 1000}]}
    # No L1: every cacheable request reads the L2 tier in Redis. The cost header on every answer
    # the processor prices: the test adds up what was charged.
    return edge_config(tmp, providers, auth=auth, budgets=budgets, cache={"l1_max_entries": 0},
                       accounting={"cost_header": True}, redis=redis)


class Traffic:
    """CLIENTS threads asking until told to stop; every outcome counted."""

    def __init__(self, edge):
        self.client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY, max_retries=0, timeout=30)
        self.statuses: Counter = Counter()
        self.cache: Counter = Counter()
        self.charged = 0  # micro-dollars, as the ledger counts them
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def ask(self, n: int) -> None:
        # Half repeat a few prompts at temperature 0 (cacheable: L2 reads and writes), half are new.
        content = f"repeat {n % 5}" if n % 2 else f"new {n} {time.monotonic_ns()}"
        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": content}], temperature=0)
            status, headers = raw.status_code, raw.headers
        except openai.APIStatusError as err:
            status, headers = err.status_code, err.response.headers
            self.errors.append(f"{status} {err.body}")
        except openai.APIError as err:
            status, headers = 0, {}
            self.errors.append(repr(err))
        with self.lock:
            self.statuses[status] += 1
            self.cache[headers.get("x-edge-cache", "-")] += 1
            if status == 200 and not headers.get("x-edge-cache", "").startswith("hit"):
                self.charged += to_micros(Decimal(headers["x-edge-cost-usd"]))

    def run(self, index: int) -> None:
        n = index
        while not self.stopping.is_set() and self.answered < MAX_REQUESTS:
            self.ask(n)
            n += CLIENTS


def drive_through_failover(edge, kill, failed_over) -> Traffic:
    traffic = Traffic(edge)
    threads = [threading.Thread(target=traffic.run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: traffic.answered >= WARM_UP, timeout=MAX_SECONDS, what="traffic before the kill")
        kill()
        wait_until(failed_over, timeout=MAX_SECONDS, what="the replica took over")
        after = traffic.answered + AFTER
        wait_until(lambda: traffic.answered >= after, timeout=MAX_SECONDS, what="traffic after the failover")
    finally:
        traffic.stopping.set()
        for thread in threads:
            thread.join(timeout=60)
    return traffic


def l2_errors(edge) -> float:
    lines = [line for line in scrape(edge).splitlines() if line.startswith('edge_ext_store_errors_total{store="redis",use="cache"}')]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def ledger_spend(section: dict, tmp) -> int:
    """The spend the shared ledger holds, read as a worker reads it."""
    async def read() -> int:
        ledger = RedisLedger(connect_to({**section, "timeout_ms": 5000}), DiskLedger(str(tmp / "reader")),
                             fail_open=False, timeout_s=5)
        return to_micros((await ledger.totals(SCOPE, PERIOD, time.time())).spent)

    return asyncio.run(read())


def check(traffic: Traffic, edge, section: dict, tmp) -> None:
    assert traffic.statuses == {200: traffic.answered}, (traffic.statuses, traffic.errors[:5])
    assert traffic.answered >= WARM_UP + AFTER and traffic.charged > 0
    # The outage was felt (cache reads failed over to misses), not slept through.
    assert l2_errors(edge) > 0, traffic.cache
    # Spend kept during the failover is written within a second of Redis's return, and the
    # rest when the workers stop: after a clean stop the ledger holds every charge, once.
    assert stop(edge.proc) == 0, edge.log()
    assert ledger_spend(section, tmp) == traffic.charged, (traffic.answered, traffic.cache)
    assert PASSWORD not in edge.log()


def test_cluster_primary_killed_under_traffic(tmp_path, mock):
    cluster = RedisClusterHA(PASSWORD)
    cluster.start()
    try:
        password_file = tmp_path / "redis-password"
        password_file.write_text(PASSWORD + "\n")
        section = {**cluster.section, "password_file": str(password_file)}
        edge = start_edge(tmp_path, config_for(tmp_path, mock, section))
        try:
            # The primary of the budget's keys: admissions and settlements lose their store.
            victim = cluster.primary_of("{%s:%s}" % (SCOPE, PERIOD))
            traffic = drive_through_failover(edge, lambda: cluster.kill(victim), lambda: cluster.failed_over(victim))
            check(traffic, edge, section, tmp_path)
        finally:
            stop(edge.proc)
    finally:
        cluster.cleanup()


def test_sentinel_primary_killed_under_traffic(tmp_path, mock, monkeypatch):
    ha = RedisSentinelHA(PASSWORD)
    ha.start()
    try:
        monkeypatch.setenv("EDGE_REDIS_PASSWORD", PASSWORD)
        section = {**ha.section, "password_env": "EDGE_REDIS_PASSWORD"}
        edge = start_edge(tmp_path, config_for(tmp_path, mock, section))
        try:
            traffic = drive_through_failover(edge, lambda: ha.kill(ha.primary), ha.failed_over)
            check(traffic, edge, section, tmp_path)
        finally:
            stop(edge.proc)
    finally:
        ha.cleanup()
