"""Routing on the providers' own rate-limit headers, through real Envoy with two mock providers:
both the 2-message path (headers from Envoy's access log) and the 4-message path (a stream, whose
headers the processor reads itself)."""

import time

import openai
import pytest

from tests.support import edge_config, refused_as_unavailable, scrape_until, start_edge, stop, wait_until

MESSAGES = [{"role": "user", "content": "route me"}]


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks:
        mock.clear()


def start(tmp, mocks, strategy):
    providers = [{"name": m.name, "kind": "openai", "base_url": m.url, "models": ["m"], "priority": i}
                 for i, m in enumerate(mocks)]
    return start_edge(tmp, edge_config(tmp, providers, routing={"strategy": strategy}, cache={"enabled": False}))


def served_by(edge, n, stream):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)
    out = []
    for _ in range(n):
        if stream:
            with client.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES, stream=True) as raw:
                out.append(raw.headers["x-edge-provider"])
                for _line in raw.iter_lines():
                    pass
        else:
            out.append(client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES).headers["x-edge-provider"])
    return out


# Each worker re-reads the providers' shared rate-limit view at most every 50 ms
# (docs/configuration.md): what the admin call shows of one worker, the others route by after that.
SHARED_VIEW_S = 0.1


def until_every_worker_sees(condition, what: str) -> None:
    wait_until(condition, timeout=5, what=what)
    time.sleep(SHARED_VIEW_S)


def standing(edge, provider: str):
    from edge_ext.admin.pb import admin_pb2

    with edge.admin_client() as admin:
        status = admin.GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
    found = {p.name: p for p in status.providers}[provider]
    return found.rate_limit, found.requests.remaining


@pytest.mark.parametrize("stream", [False, True], ids=["2-message", "streamed"])
def test_a_provider_at_zero_gets_no_traffic_until_its_reset(tmp_path, mocks, stream):
    primary, secondary = mocks
    edge = start(tmp_path, mocks, "failover")
    try:
        window = 6.0
        started = time.monotonic()
        primary.rate_limits(requests_limit=100, requests_remaining=1, window_s=window)
        assert served_by(edge, 1, stream) == ["primary"]  # its answer says 0 left
        until_every_worker_sees(lambda: standing(edge, "primary") == ("exhausted", 0), "primary exhausted")
        text = scrape_until(edge, 'edge_ext_provider_ratelimit_remaining{budget="requests",provider="primary"} 0.0')
        assert 'edge_ext_provider_ratelimit_limit{budget="requests",provider="primary"} 100.0' in text
        while time.monotonic() - started < window - 2:
            assert served_by(edge, 1, stream) == ["secondary"]
        assert len(primary.requests()) == 1
        # Its reset passed: it is the first choice again, and reports its refilled budget.
        wait_until(lambda: served_by(edge, 1, stream) == ["primary"], timeout=window + 5, what="primary after its reset")
        assert time.monotonic() - started >= window - 0.5
        wait_until(lambda: standing(edge, "primary")[0] == "ok", timeout=5, what="primary ok again")
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_a_low_provider_gets_less(tmp_path, mocks):
    primary, secondary = mocks
    edge = start(tmp_path, mocks, "round_robin")
    try:
        # 6 of 100 left: the first answer says 5, under the 10% threshold, for a minute.
        primary.rate_limits(requests_limit=100, requests_remaining=6, window_s=60)
        secondary.rate_limits(requests_limit=100, requests_remaining=100, window_s=60)
        wait_until(lambda: "primary" in served_by(edge, 1, False), timeout=5, what="one answer from the primary")
        until_every_worker_sees(lambda: standing(edge, "primary")[0] == "low", "primary low")
        before = len(primary.requests())
        assert served_by(edge, 12, False) == ["secondary"] * 12
        assert len(primary.requests()) == before
        # Its answers' headers reach the router with their outcomes, one flush interval later.
        wait_until(lambda: standing(edge, "secondary")[0] == "ok", timeout=5, what="secondary ok")
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_every_provider_at_zero_is_a_503_with_retry_after(tmp_path, mocks):
    edge = start(tmp_path, mocks, "failover")
    try:
        for mock in mocks:
            mock.rate_limits(requests_limit=10, requests_remaining=1, window_s=30)
        assert served_by(edge, 1, False) == ["primary"]
        until_every_worker_sees(lambda: standing(edge, "primary")[0] == "exhausted", "primary exhausted")
        assert served_by(edge, 1, False) == ["secondary"]
        until_every_worker_sees(lambda: standing(edge, "secondary")[0] == "exhausted", "secondary exhausted")
        assert 1 <= refused_as_unavailable(edge, mocks, MESSAGES) <= 30
    finally:
        assert stop(edge.proc) == 0, edge.log()
