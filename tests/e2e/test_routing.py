"""Strategies and circuit breakers through real Envoy, with several mock providers."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.support import edge_config, http, refused_as_unavailable, scrape_until, start_edge, stop, wait_until

MESSAGES = [{"role": "user", "content": "route me"}]


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks:
        mock.clear()


def start(tmp, mocks, routing, redis=None, **provider_extra):
    providers = [
        {"name": "primary", "kind": "openai", "base_url": mocks[0].url, "models": ["m"], "priority": 0,
         **provider_extra.get("primary", {})},
        {"name": "secondary", "kind": "openai", "base_url": mocks[1].url, "models": ["m"], "priority": 1,
         **provider_extra.get("secondary", {})},
    ]
    return start_edge(tmp, edge_config(tmp, providers, routing=routing, cache={"enabled": False},
                                       **({"redis": redis} if redis else {})))


def answers(edge, n=1, **kw):
    """(x-edge-provider, x-edge-attempts) of each answer, or the error status."""
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)
    out = []
    for _ in range(n):
        try:
            raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, **kw)
            out.append((raw.headers["x-edge-provider"], raw.headers["x-edge-attempts"]))
        except openai.APIStatusError as err:
            out.append(err.status_code)
    return out


def breaker_state(edge, provider: str) -> str:
    from edge_ext.admin.pb import admin_pb2

    with edge.admin_client() as admin:
        status = admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
    return {p.name: p.circuit_state for p in status.providers}[provider]


def wait_open(edge, provider: str) -> None:
    """A plain answer's outcome reaches the breaker a flush interval after the answer (the
    2-message path, docs/envoy.md): wait for it, bounded, before relying on the open breaker."""
    wait_until(lambda: breaker_state(edge, provider) == "open", timeout=5, what=f"{provider}'s breaker open")


def served_by(edge, n=1, **kw):
    return [a if isinstance(a, int) else a[0] for a in answers(edge, n, **kw)]


def test_failing_primary_opens_its_breaker_then_recovers(tmp_path, mocks):
    routing = {"strategy": "failover", "breaker": {"failure_threshold": 5, "open_seconds": 1.0, "success_threshold": 2}}
    edge = start(tmp_path, mocks, routing)
    try:
        mocks[0].faults(status=500, count=-1)
        # In-flight failover: each of the primary's failures is retried on the secondary.
        assert answers(edge, 5) == [("secondary", "2")] * 5
        assert len(mocks[0].requests()) == 5
        wait_open(edge, "primary")
        # Open after 5 failures: the secondary is the first choice, the primary gets nothing.
        assert answers(edge, 10) == [("secondary", "1")] * 10
        assert len(mocks[0].requests()) == 5
        # Counted when each request's stream ends, which may trail its answer by a moment.
        expected = ['edge_ext_failovers_total{from_provider="primary",to_provider="secondary"} 5.0',
                    'edge_ext_upstream_attempts_total{provider="primary",result="retried"} 5.0',
                    'edge_ext_upstream_attempts_total{provider="secondary",result="answered"} 15.0']
        wait_until(lambda: all(line in http("GET", f"http://127.0.0.1:{edge.metrics_port}/metrics")[2].decode()
                               for line in expected), timeout=5, what="attempt metrics")

        mocks[0].clear()  # healthy again
        wait_until(lambda: served_by(edge)[0] == "primary", timeout=10, what="probe after the open time")
        # Half-open probes are one at a time, each freed by its outcome: wait for the close.
        wait_until(lambda: served_by(edge)[0] == "primary" and breaker_state(edge, "primary") == "closed",
                   timeout=10, what="closed after the probes")
        assert served_by(edge, 5) == ["primary"] * 5
        text = scrape_until(edge, 'edge_ext_breaker_transitions_total{provider="primary",to="open"}')
        assert 'edge_ext_breaker_state{provider="primary"} 0.0' in text  # closed again
        assert 'edge_ext_provider_latency_ewma_seconds{provider="primary"}' in text
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_all_providers_open_is_an_immediate_503_with_retry_after(tmp_path, mocks):
    edge = start(tmp_path, mocks, {"breaker": {"failure_threshold": 1, "open_seconds": 30}})
    try:
        for mock in mocks:
            mock.faults(status=503, count=-1)
        served_by(edge, 2)
        for name in ("primary", "secondary"):
            wait_open(edge, name)
        assert refused_as_unavailable(edge, mocks, MESSAGES) >= 1
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_weighted_split_follows_the_weights(tmp_path, mocks):
    edge = start(tmp_path, mocks, {"strategy": "weighted"}, primary={"weight": 3}, secondary={"weight": 1})
    try:
        with ThreadPoolExecutor(8) as pool:
            results = [r for chunk in pool.map(lambda _: served_by(edge, 125), range(8)) for r in chunk]
        counts = Counter(results)
        assert counts["primary"] + counts["secondary"] == 1000
        assert abs(counts["primary"] / 1000 - 0.75) < 0.05, counts
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_least_latency_moves_traffic_to_the_faster_provider(tmp_path, mocks):
    edge = start(tmp_path, mocks, {"strategy": "least_latency", "least_latency_epsilon": 0.05})
    try:
        mocks[0].faults(latency_ms=150, count=-1)
        served_by(edge, 10)  # both get sampled
        later = Counter(served_by(edge, 40))
        assert later["secondary"] > 30, later
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_cost_optimized_picks_the_cheaper_provider(tmp_path, mocks):
    # The same public model mapped onto a cheap and an expensive upstream model.
    edge = start(tmp_path, mocks, {"strategy": "cost_optimized"},
                 primary={"models": [], "model_map": {"m": "gpt-4o"}},
                 secondary={"models": [], "model_map": {"m": "gpt-4o-mini"}})
    try:
        assert served_by(edge, 5) == ["secondary"] * 5
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_admin_forces_a_breaker_open_and_closed(tmp_path, mocks):
    import grpc

    from edge_ext.admin.pb import admin_pb2

    edge = start(tmp_path, mocks, {"strategy": "failover"})
    try:
        with edge.admin_client() as admin:
            assert admin.SetBreaker(admin_pb2.SetBreakerRequest(provider="primary", state="open"), timeout=5).state == "open"
            # Shared by every worker: all requests avoid the primary now.
            assert served_by(edge, 6) == ["secondary"] * 6
            status = admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
            assert {p.name: p.circuit_state for p in status.providers}["primary"] == "open"
            admin.SetBreaker(admin_pb2.SetBreakerRequest(provider="primary", state="closed"), timeout=5)
            assert served_by(edge, 3) == ["primary"] * 3
            with pytest.raises(grpc.RpcError) as info:
                admin.SetBreaker(admin_pb2.SetBreakerRequest(provider="nope", state="open"), timeout=5)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_two_replicas_share_breakers_through_redis(tmp_path, mocks, shared_redis):
    edges = []
    try:
        routing = {"strategy": "failover", "breaker": {"failure_threshold": 3, "open_seconds": 30}}
        for name in ("one", "two"):
            edges.append(start(tmp_path / name, mocks, routing, redis={"url": shared_redis.url}))
        mocks[0].faults(status=500, count=-1)
        # Replica one's requests fail over, and its failures open the primary's breaker.
        assert answers(edges[0], 3) == [("secondary", "2")] * 3
        # Replica two never saw a failure, yet its breaker opens within a second or two.
        from edge_ext.admin.pb import admin_pb2

        with edges[1].admin_client() as admin:

            def primary_open():
                status = admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
                return {p.name: p.circuit_state for p in status.providers}["primary"] == "open"

            wait_until(primary_open, timeout=5, what="breaker shared")
        calls_before = len(mocks[0].requests())
        assert answers(edges[1], 5) == [("secondary", "1")] * 5
        assert len(mocks[0].requests()) == calls_before
    finally:
        for edge in edges:
            assert stop(edge.proc) == 0, edge.log()


def test_a_hanging_provider_is_cut_off_by_its_timeout_and_failed_over(tmp_path, mocks):
    edge = start(tmp_path, mocks, {"strategy": "failover", "breaker": {"failure_threshold": 2, "open_seconds": 30}},
                 primary={"timeout_s": 0.3})
    try:
        mocks[0].faults(latency_ms=3000, count=-1)
        assert answers(edge, 2) == [("secondary", "2")] * 2
        wait_open(edge, "primary")
        assert answers(edge, 3) == [("secondary", "1")] * 3  # the timeouts opened its breaker
        assert len(mocks[0].requests()) == 2
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_without_failover_a_hanging_provider_times_out_and_opens_its_breaker(tmp_path, mocks):
    edge = start(tmp_path, mocks, {"strategy": "failover", "max_attempts": 1,
                                   "breaker": {"failure_threshold": 2, "open_seconds": 30}},
                 primary={"timeout_s": 0.3})
    try:
        mocks[0].faults(latency_ms=3000, count=-1)
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="m", messages=MESSAGES)
            assert info.value.status_code == 504 and info.value.body["code"] == "response_timeout"
        wait_open(edge, "primary")
        assert served_by(edge, 3) == ["secondary"] * 3
    finally:
        assert stop(edge.proc) == 0, edge.log()
