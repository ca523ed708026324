"""Spending without paying, tried as an attacker would, through real Envoy.

A client that reads part of a streamed answer and hangs up, or gives up on an answer before it
arrives, is charged what was delivered (estimated, since the provider's usage report never came);
the same holds for tokens per minute. Concurrent requests against a nearly exhausted budget are
admitted only while the reservations of those in flight leave room, so the budget is overrun by
at most one reservation (docs/configuration.md, budgets).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.client import HTTPConnection, IncompleteRead

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_ext.auth import hash_key
from edge_ext.cost.pricing import load_pricing
from edge_ext.cost.reserve import reservation
from tests.hostile import KEY_ACME, MESSAGES, OPENAI_PROVIDER_KEY, hostile_config, post, provider_env
from tests.support import http, start_edge, start_mock, stop, wait_until

KEY_RACE = "sk-edge-hostile-race-0003"
KEY_TPM = "sk-edge-hostile-tpm-0004"
RACE_LIMIT = Decimal("0.002")
TPM_LIMIT = 100
LONG_ANSWER = {"x-mock-output-words": "20000", "x-mock-chunk-delay-ms": "1"}
# Workers write their metric values every flush interval; short here, so that waiting one out
# (settle) costs little.
FLUSH_S = 0.2


def script(mock, headers: dict, count: int = 1) -> None:
    """The next ``count`` answers behave as ``headers`` say (the edge forwards no x-mock-* header)."""
    mock.clear()
    mock.faults(headers=headers, count=count)


@pytest.fixture(scope="module")
def mock():
    started = start_mock("spend-mock", "--openai-key", OPENAI_PROVIDER_KEY)
    yield started
    stop(started.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("spend")
    config = hostile_config(tmp, mock, cache={"enabled": False})
    # Tenants of their own, so that each test starts from an untouched budget or minute.
    config["auth"]["keys"] = [*config["auth"]["keys"],
                              {"id": "race-key", "sha256": hash_key(KEY_RACE), "tenant": "race"},
                              {"id": "tpm-key", "sha256": hash_key(KEY_TPM), "tenant": "tpm",
                               "tokens_per_minute": TPM_LIMIT}]
    config["budgets"]["limits"] = [*config["budgets"]["limits"],
                                   {"scope": "tenant", "id": "race", "period": "daily", "limit_usd": float(RACE_LIMIT)}]
    config["metrics"]["flush_interval_s"] = FLUSH_S
    running = start_edge(tmp, config, env=provider_env())
    yield running
    assert stop(running.proc) == 0, running.log()


def metric(edge, name: str, **labels) -> float:
    """The value of one sample on the edge's Prometheus endpoint (0 when absent)."""
    text = http("GET", f"http://127.0.0.1:{edge.metrics_port}/metrics")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def read_stream(edge, key: str, headers: dict, stop_after: int | None = None) -> bytes:
    """Streams a chat answer and reads it to its end, or reads ``stop_after`` bytes and hangs up."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).encode()
    conn = HTTPConnection("127.0.0.1", edge.port, timeout=10)
    received = b""
    try:
        conn.request("POST", "/v1/chat/completions", body,
                     {"content-type": "application/json", "authorization": f"Bearer {key}", **headers})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        # Bounded: each read returns data, or b"" at the end, or raises on timeout or reset.
        while stop_after is None or len(received) < stop_after:
            chunk = response.read1(16384)
            if not chunk:
                break
            received += chunk
    except (IncompleteRead, ConnectionError):
        pass  # the stream was cut: what arrived is what counts
    finally:
        conn.close()
    return received


def delivered_words(raw: bytes) -> int:
    words = 0
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {") and line.endswith(b"}"):
            for choice in json.loads(line[6:]).get("choices", []):
                words += len((choice.get("delta", {}).get("content") or "").split())
    return words


ROUTED = {"outcome": "routed", "provider": "oa"}


def settle() -> None:
    """Waits out one metrics flush (and a margin): readings taken after it count every stream that
    had ended before it, so they can serve as the "before" of a difference."""
    time.sleep(FLUSH_S + 0.3)


def ended(edge, before: float, what: str) -> None:
    """Waits until the processor has closed one more routed stream than ``before``."""
    wait_until(lambda: metric(edge, "edge_ext_requests_total", **ROUTED) > before, timeout=10, what=what)
    time.sleep(0.5)  # the metrics and the ledger are written just after


def tenant_figures(edge, tenant: str) -> tuple[float, float, float, float]:
    return (metric(edge, "edge_ext_tenant_tokens_total", tenant=tenant),
            metric(edge, "edge_ext_tenant_cost_usd_total", tenant=tenant),
            metric(edge, "edge_ext_estimated_tokens_total", tenant=tenant),
            metric(edge, "edge_ext_estimated_cost_usd_total", tenant=tenant))


def test_a_stream_the_client_hangs_up_on_is_charged_what_it_delivered(edge, mock):
    settle()
    before, streams = tenant_figures(edge, "acme"), metric(edge, "edge_ext_requests_total", **ROUTED)
    script(mock, LONG_ANSWER)
    raw = read_stream(edge, KEY_ACME, {}, stop_after=45_000)
    assert len(raw) >= 45_000
    words = delivered_words(raw)
    assert words > 100
    ended(edge, streams, "the cut-off stream closed")
    tokens, usd, estimated_tokens, estimated_usd = (a - b for a, b in zip(tenant_figures(edge, "acme"), before))
    # Output estimated from the text delivered (at least what this client read, far from the
    # 20,000 words the provider would have gone on to write), input from the request.
    assert words < tokens < 10_000 and usd > 0, (tokens, usd)
    assert (estimated_tokens, estimated_usd) == (tokens, usd)


def test_a_provider_cutting_a_stream_short_is_charged_too(edge, mock):
    settle()
    before, streams = tenant_figures(edge, "acme"), metric(edge, "edge_ext_requests_total", **ROUTED)
    # The provider drops the connection after 300 events: no final usage ever comes.
    script(mock, {"x-mock-output-words": "2000", "x-mock-chunk-delay-ms": "1",
                  "x-mock-drop": "mid-stream", "x-mock-drop-after": "300"})
    raw = read_stream(edge, KEY_ACME, {})
    assert b"[DONE]" not in raw
    ended(edge, streams, "the dropped stream closed")
    tokens, usd, estimated_tokens, _ = (a - b for a, b in zip(tenant_figures(edge, "acme"), before))
    assert 300 < tokens == estimated_tokens < 2000 and usd > 0, tokens


def test_an_answer_abandoned_before_it_arrives_is_charged_its_prompt(edge, mock):
    settle()
    before, streams = tenant_figures(edge, "acme"), metric(edge, "edge_ext_requests_total", **ROUTED)
    prompt = [{"role": "user", "content": "word " * 2000}]
    script(mock, {"x-mock-latency-ms": "3000"})
    status, _, _ = post_with_timeout(edge, {"model": "gpt-4o-mini", "messages": prompt}, {}, 0.5)
    assert status is None  # the client gave up
    ended(edge, streams, "the abandoned request closed")
    tokens, usd, estimated_tokens, _ = (a - b for a, b in zip(tenant_figures(edge, "acme"), before))
    assert 2000 <= tokens == estimated_tokens < 3000 and usd > 0, tokens


def post_with_timeout(edge, body: dict, headers: dict, timeout: float):
    conn = HTTPConnection("127.0.0.1", edge.port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body).encode(),
                     {"content-type": "application/json", "authorization": f"Bearer {KEY_ACME}", **headers})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    except TimeoutError:
        return None, {}, b""
    finally:
        conn.close()


def test_tokens_per_minute_count_an_aborted_stream(edge, mock):
    # Minutes are UTC windows: start early enough in one that the whole test stays inside it.
    if time.time() % 60 > 40:
        time.sleep(60.5 - time.time() % 60)
    settle()
    streams = metric(edge, "edge_ext_requests_total", **ROUTED)
    script(mock, LONG_ANSWER)
    raw = read_stream(edge, KEY_TPM, {}, stop_after=45_000)
    assert delivered_words(raw) > TPM_LIMIT
    ended(edge, streams, "the cut-off stream closed")
    status, headers, body = post(f"{edge.url}/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES},
                                 key=KEY_TPM)
    assert status == 429, body
    assert body["error"]["code"] == "tokens_per_minute_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 60


def race_request(edge, max_tokens: int):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": max_tokens}
    # Slow answers: every request is in flight before the first one is charged.
    status, _, reply = post(f"{edge.url}/v1/chat/completions", body, key=KEY_RACE)
    return status, reply


def test_concurrent_requests_overrun_a_nearly_spent_budget_by_at_most_one_reservation(edge, mock):
    # Spend most of the budget first.
    settle()
    streams = metric(edge, "edge_ext_requests_total", **ROUTED)
    script(mock, {"x-mock-output-words": "1000"})
    status, headers, _ = post(f"{edge.url}/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES},
                              key=KEY_RACE)
    assert status == 200
    ended(edge, streams, "the first request closed")
    # A plain answer's cost is priced from its outcome, a flush interval after the answer (the
    # 2-message path): read it from the metrics once there.
    wait_until(lambda: metric(edge, "edge_ext_tenant_cost_usd_total", tenant="race") > 0, timeout=10,
               what="the first answer priced")
    spent = Decimal(str(metric(edge, "edge_ext_tenant_cost_usd_total", tenant="race")))
    assert spent < RACE_LIMIT
    remaining = RACE_LIMIT - spent
    # Each concurrent request reserves about 2/5 of what is left: room for three reservations.
    price = load_pricing().price("gpt-4o-mini")
    max_tokens = max(1, int(remaining / Decimal("2.5") / price.output * 1_000_000))
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": max_tokens}
    held = reservation(body, (price,)).usd
    room = math.ceil(remaining / held)
    streams = metric(edge, "edge_ext_requests_total", **ROUTED)
    with ThreadPoolExecutor(max_workers=12) as pool:
        script(mock, {"x-mock-latency-ms": "1500", "x-mock-output-words": str(max_tokens)}, count=12)
        results = list(pool.map(lambda _: race_request(edge, max_tokens), range(12)))
    admitted = [reply for status, reply in results if status == 200]
    refused = [reply for status, reply in results if status != 200]
    assert all(reply["error"]["code"] == "budget_exceeded" for reply in refused), refused
    assert 1 <= len(admitted) <= room, f"{len(admitted)} admitted, room for {room}"
    ended(edge, streams + len(admitted) - 1, "the admitted requests closed")
    total = Decimal(str(metric(edge, "edge_ext_tenant_cost_usd_total", tenant="race")))
    assert total <= RACE_LIMIT + held, (total, held)
