"""The common request in 2 ext_proc messages, its outcome back through Envoy's access log: through
real Envoy, with the hostile-client edge (keys, budgets, tokens per minute) and the bundled mock.

Every test checks that its traffic took the 2-message path (the processor ended the stream:
Envoy's ``server_half_closed``) and that what the response phases used to do still happens:
breakers open, budgets and tokens-per-minute limits refuse, cost and usage reach the metrics and
the access log, and a worker killed with outcomes in flight leaves no answer unaccounted.
"""

import json
import os
import signal
import subprocess
import time
from decimal import Decimal

import anthropic
import grpc
import pytest

from edge_ext.admin.pb import admin_pb2
from edge_ext.auth import hash_key
from tests.hostile import (ANTHROPIC_PROVIDER_KEY, KEY_ACME, KEY_OTHER, MESSAGES, OPENAI_PROVIDER_KEY, hostile_config, post,
                           provider_env)
from tests.support import http, start_edge, start_mock, stop, wait_until

CHAT = "/v1/chat/completions"
KEY_TPM = "sk-edge-fast-tpm-0003"
KEY_CHEAP = "sk-edge-fast-cheap-0004"
KEY_ANTHROPIC = "sk-edge-fast-anthropic-0005"


@pytest.fixture(scope="module")
def mock():
    started = start_mock("fast-mock", "--openai-key", OPENAI_PROVIDER_KEY)
    yield started
    stop(started.proc)


@pytest.fixture(autouse=True)
def clean(mock):
    mock.clear()


def fast_config(tmp, mock, anthropic_mock=None, **sections):
    config = hostile_config(tmp, mock, anthropic_mock, cache={"enabled": False}, **sections)
    config["auth"]["keys"] += [
        {"id": "tpm-key", "sha256": hash_key(KEY_TPM), "tenant": "tpm", "tokens_per_minute": 100},
        {"id": "cheap-key", "sha256": hash_key(KEY_CHEAP), "tenant": "cheap"},
        {"id": "anthropic-key", "sha256": hash_key(KEY_ANTHROPIC), "tenant": "anth"},
    ]
    config["budgets"]["limits"] += [{"scope": "tenant", "id": "cheap", "period": "daily", "limit_usd": 0.00003},
                                    {"scope": "tenant", "id": "anth", "period": "daily", "limit_usd": 0.0003}]
    config["providers"][0]["timeout_s"] = 3
    config["routing"] = {"breaker": {"failure_threshold": 2, "open_seconds": 60}}
    return config


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("fast")
    running = start_edge(tmp, fast_config(tmp, mock), env=provider_env())
    yield running
    assert stop(running.proc) == 0, running.log()


def closed_by_processor(edge) -> int:
    return edge.envoy_stat("http.edge.ext_proc.server_half_closed")


def chat(edge, key=KEY_ACME, **extra):
    return post(f"{edge.url}{CHAT}", {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 50, **extra}, key=key)


def metrics(edge) -> str:
    return http("GET", f"http://127.0.0.1:{edge.metrics_port}/metrics")[2].decode()


def spent(edge, tenant: str) -> Decimal:
    with edge.admin_client() as admin:
        (row,) = admin.GetSpend(admin_pb2.GetSpendRequest(scope="tenant", id=tenant)).budgets
    return Decimal(row.spent_usd)


def spend_row(edge, tenant: str):
    """The tenant's budget status, or None while a restarted worker's admin socket is not up."""
    try:
        with edge.admin_client() as admin:
            (row,) = admin.GetSpend(admin_pb2.GetSpendRequest(scope="tenant", id=tenant)).budgets
        return row
    except grpc.RpcError:
        return None


def test_a_plain_request_takes_exactly_two_messages(edge):
    names = ("streams_started", "stream_msgs_received", "server_half_closed", "spurious_msgs_received", "streams_failed")
    before = {n: edge.envoy_stat(f"http.edge.ext_proc.{n}") for n in names}
    status, headers, body = chat(edge)
    assert status == 200 and body["usage"]["completion_tokens"] > 0
    after = {n: edge.envoy_stat(f"http.edge.ext_proc.{n}") for n in names}
    # One stream, two processor replies (request headers, request body), closed by the processor.
    assert {n: after[n] - before[n] for n in names} == {
        "streams_started": 1, "stream_msgs_received": 2, "server_half_closed": 1, "spurious_msgs_received": 0,
        "streams_failed": 0}
    assert (headers["x-edge-provider"], headers["x-edge-cache"], headers["x-edge-attempts"]) == ("oa", "off", "1")
    # Cost is priced by the processor only: on this path it is in the access log and metrics.
    assert "x-edge-cost-usd" not in headers


def test_a_stream_keeps_its_response_phases(edge):
    before = closed_by_processor(edge)
    status, _, body = chat(edge, stream=True)
    assert status == 200 and b"[DONE]" in body
    assert closed_by_processor(edge) == before


def test_cost_and_usage_reach_metrics_and_the_access_log(edge):
    before = closed_by_processor(edge)
    status, headers, body = chat(edge, key=KEY_OTHER)
    assert status == 200 and closed_by_processor(edge) == before + 1
    usage = body["usage"]
    request_id = headers["x-request-id"]

    def logged():
        lines = [json.loads(line) for line in edge.log().splitlines() if request_id in line and line.startswith("{")]
        return [line for line in lines if line.get("request_id") == request_id]

    wait_until(lambda: logged(), timeout=10, what="access log line")
    (line,) = logged()
    assert line["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert line["usage"]["completion_tokens"] == usage["completion_tokens"]
    wait_until(lambda: 'edge_ext_tenant_tokens_total{tenant="other"}' in metrics(edge), timeout=10, what="tenant tokens")
    text = metrics(edge)
    total = usage["prompt_tokens"] + usage["completion_tokens"]
    assert f'edge_ext_tenant_tokens_total{{tenant="other"}} {float(total)}' in text
    assert 'edge_ext_tenant_cost_usd_total{tenant="other"}' in text
    assert 'edge_ext_responses_total{provider="oa",status_class="2xx"}' in text


def test_a_budget_refuses_once_outcomes_settled_the_spend(edge):
    # $0.00003 for tenant "cheap": a few answers of gpt-4o-mini, each settled from its outcome.
    before, served = closed_by_processor(edge), 0
    for _ in range(40):
        status, _, body = chat(edge, key=KEY_CHEAP)
        if status != 200:
            break
        served += 1
        time.sleep(0.3)  # the outcome arrives a flush interval after the answer
    assert status == 429 and body["error"]["code"] == "budget_exceeded", body
    assert served >= 2 and closed_by_processor(edge) == before + served
    assert spent(edge, "cheap") >= Decimal("0.00003")


def test_a_tokens_per_minute_limit_refuses_on_settled_usage(edge):
    # 100 tokens a minute; each request reserves its prompt and max_tokens (50) and is settled to
    # its real usage (about 30): without settlements the third request would be refused.
    before, served = closed_by_processor(edge), 0
    for _ in range(12):
        status, _, body = chat(edge, key=KEY_TPM)
        if status != 200:
            break
        served += 1
        time.sleep(0.3)
    assert status == 429 and body["error"]["code"] == "tokens_per_minute_exceeded", body
    assert 3 <= served <= 8 and closed_by_processor(edge) == before + served


def test_a_failing_provider_opens_its_breaker_from_outcomes(edge, mock):
    mock.faults(status=500, count=10)
    before, statuses = closed_by_processor(edge), []
    for _ in range(10):
        status, _, body = chat(edge, key=KEY_OTHER)
        statuses.append(status)
        if status == 503:
            break
        time.sleep(0.3)
    assert statuses[-1] == 503 and body["error"]["code"] == "provider_unavailable", statuses
    assert statuses[:2] == [500, 500] and closed_by_processor(edge) == before + len(statuses) - 1
    wait_until(lambda: 'edge_ext_breaker_transitions_total{provider="oa",to="open"}' in metrics(edge), timeout=5,
               what="breaker transition metric")
    with edge.admin_client() as admin:
        admin.SetBreaker(admin_pb2.SetBreakerRequest(provider="oa", state="closed"))
    mock.clear()


@pytest.fixture(scope="module")
def anthropic_edge(tmp_path_factory, mock):
    """An edge with an Anthropic provider too: Anthropic clients answered by it never change API."""
    provider = start_mock("fast-anthropic-mock", "--anthropic-key", ANTHROPIC_PROVIDER_KEY)
    tmp = tmp_path_factory.mktemp("fast-anthropic")
    try:
        running = start_edge(tmp, fast_config(tmp, mock, provider), env=provider_env())
        yield running
        assert stop(running.proc) == 0, running.log()
    finally:
        stop(provider.proc)


def test_an_anthropic_client_of_an_anthropic_provider_is_accounted_from_its_outcome(anthropic_edge):
    edge = anthropic_edge
    client = anthropic.Anthropic(base_url=edge.url, api_key=KEY_ANTHROPIC, max_retries=0)
    before = closed_by_processor(edge)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
    usage = raw.parse().usage
    assert usage.output_tokens > 0 and closed_by_processor(edge) == before + 1  # the processor ended the stream
    assert raw.headers["x-edge-provider"] == "an" and "x-edge-cost-usd" not in raw.headers
    # Envoy read the Anthropic usage (input_tokens, output_tokens) into the outcome: priced by the
    # processor from it, in metrics and in the tenant's spend.
    total = float(usage.input_tokens + usage.output_tokens)
    wait_until(lambda: f'edge_ext_tenant_tokens_total{{tenant="anth"}} {total}' in metrics(edge), timeout=10,
               what="tenant tokens")
    text = metrics(edge)
    assert 'edge_ext_tenant_cost_usd_total{tenant="anth"}' in text
    assert 'edge_ext_responses_total{provider="an",status_class="2xx"}' in text
    assert 'edge_ext_estimated_tokens_total{tenant="anth"}' not in text  # read, not estimated
    wait_until(lambda: spent(edge, "anth") > 0, timeout=10, what="settled spend")
    # The price table's claude-haiku-4-5: $1 in, $5 out per million tokens.
    assert spent(edge, "anth") == (Decimal(usage.input_tokens) * 1 + Decimal(usage.output_tokens) * 5) / 1_000_000
    # $0.0003 a day: a few more answers, each settled from its outcome, then the budget refuses.
    served = 1
    for _ in range(40):
        time.sleep(0.3)  # the outcome arrives a flush interval after the answer
        try:
            client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
        except anthropic.RateLimitError as err:
            assert err.body["type"] == "error" and "budget" in err.body["error"]["message"].lower(), err.body
            break
        served += 1
    else:
        pytest.fail("the budget never refused")
    assert served >= 2 and closed_by_processor(edge) == before + served
    assert spent(edge, "anth") >= Decimal("0.0003")


def worker_pids(edge) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(edge.proc.pid), "-f", "edge_ext.worker"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_outcomes_lost_with_killed_workers_are_charged_by_their_holds(tmp_path, mock):
    # Envoy holds the outcomes for up to 2 s. The workers are frozen, so Envoy's flush lands in
    # their sockets' buffers, and then killed: those outcomes are gone. Their budget holds
    # (timeout 3 s + flush 2 s + grace 0.5 s) are charged as estimated when they expire.
    config = fast_config(tmp_path, mock, accounting={"outcome_flush_ms": 2000, "outcome_grace_s": 0.5})
    edge = start_edge(tmp_path, config, env=provider_env())
    try:
        before = closed_by_processor(edge)
        for _ in range(3):
            assert chat(edge)[0] == 200
        assert closed_by_processor(edge) == before + 3
        pids = worker_pids(edge)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(2.5)  # Envoy flushes its outcome batch into the frozen workers' sockets
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(worker_pids(edge)) == 2 and not set(pids) & set(worker_pids(edge)), timeout=20,
                   what="workers restarted")
        wait_until(lambda: spend_row(edge, "acme") is not None and Decimal(spend_row(edge, "acme").spent_usd) > 0,
                   timeout=30, what="the lost outcomes' spend")
        assert "of the spend estimated" in spend_row(edge, "acme").message
    finally:
        assert stop(edge.proc) == 0, edge.log()
