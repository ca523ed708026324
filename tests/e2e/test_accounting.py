"""Token usage and cost, through real Envoy: headers on JSON answers, metrics and access log."""

import json
from decimal import Decimal

import anthropic
import openai
import pytest

from tests.support import edge_config, scrape_until, start_edge, start_mock, stop, wait_until

MESSAGES = [{"role": "user", "content": "How much does this cost?"}]
# Shipped prices (USD per million tokens) for the models used here.
GPT_4O_MINI = {"input": Decimal("0.15"), "cached": Decimal("0.075"), "output": Decimal("0.60")}
SONNET = {"input": Decimal("3"), "cached": Decimal("0.30"), "write": Decimal("3.75"), "output": Decimal("15")}
M = Decimal(1_000_000)


@pytest.fixture(scope="module")
def mock():
    started = start_mock("acct-mock")
    yield started
    stop(started.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("acct")
    providers = [
        {"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini"]},
        {"name": "an", "kind": "anthropic", "base_url": mock.url, "models": ["claude-sonnet-4-6"]},
        {"name": "free", "kind": "openai_compatible", "base_url": mock.url, "models": ["my-local-llama"]},
    ]
    # cost_header: plain answers keep their response phase, so that the processor can put their
    # price in x-edge-cost-usd (without it, the 2-message path carries the price in the access
    # log and metrics only: tests/e2e/test_fast_path.py).
    running = start_edge(tmp, edge_config(tmp, providers, cache={"enabled": False}, accounting={"cost_header": True}))
    yield running
    assert stop(running.proc) == 0, running.log()


def oai(edge):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client-acct", max_retries=0)


def test_openai_json_answer_cost_header_matches_its_usage(edge, mock):
    # Scripted at the mock: the edge forwards no x-mock-* header.
    mock.faults(headers={"x-mock-cached-tokens": "4", "x-mock-reasoning-tokens": "3"})
    raw = oai(edge).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    usage = raw.parse().usage
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached == 4
    expected = ((usage.prompt_tokens - cached) * GPT_4O_MINI["input"] + cached * GPT_4O_MINI["cached"]
                + usage.completion_tokens * GPT_4O_MINI["output"]) / M
    assert Decimal(raw.headers["x-edge-cost-usd"]) == expected
    assert f"output={usage.completion_tokens}" in raw.headers["x-edge-tokens"]
    assert "reasoning=3" in raw.headers["x-edge-tokens"]


def test_anthropic_json_answer_with_cache_read_and_write(edge, mock):
    client = anthropic.Anthropic(base_url=edge.url, api_key="sk-client-acct", max_retries=0)
    mock.faults(headers={"x-mock-cached-tokens": "5", "x-mock-cache-creation-tokens": "2"})
    raw = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)
    u = raw.parse().usage
    expected = (u.input_tokens * SONNET["input"] + u.cache_read_input_tokens * SONNET["cached"]
                + u.cache_creation_input_tokens * SONNET["write"] + u.output_tokens * SONNET["output"]) / M
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (5, 2)
    assert Decimal(raw.headers["x-edge-cost-usd"]) == expected


def test_translated_answer_is_priced_by_the_model_that_served_it(edge):
    raw = oai(edge).chat.completions.with_raw_response.create(model="claude-sonnet-4-6", messages=MESSAGES)
    u = raw.parse().usage
    expected = (u.prompt_tokens * SONNET["input"] + u.completion_tokens * SONNET["output"]) / M
    assert Decimal(raw.headers["x-edge-cost-usd"]) == expected


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["openai-stream", "anthropic-stream-translated"])
def test_streamed_usage_is_counted_once_in_the_access_log(edge, model):
    chunks = list(oai(edge).chat.completions.create(model=model, messages=[{"role": "user", "content": f"stream cost {model}"}],
                                                    stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage

    def line():
        for entry in edge.log().splitlines():
            if entry.startswith("{") and '"tokens_out"' in entry:
                data = json.loads(entry)
                if data.get("model") == model and data.get("tokens_out") == str(usage.completion_tokens) and data["cost_usd"] not in (None, "-"):
                    return data
        return None

    wait_until(lambda: line() is not None, what="access log line with usage")
    data = line()
    assert data["tokens_in"] == str(usage.prompt_tokens)
    assert Decimal(data["cost_usd"]) > 0


def test_unpriced_model_is_counted_never_zero(edge):
    raw = oai(edge).chat.completions.with_raw_response.create(model="my-local-llama", messages=MESSAGES)
    assert raw.headers["x-edge-cost-usd"] == "unpriced"
    scrape_until(edge, 'edge_ext_unpriced_requests_total{model="my-local-llama"}')
    assert "has no price" in edge.log()


def test_metrics_carry_tokens_and_cost(edge):
    oai(edge).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    oai(edge).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)

    # Per-request figures are counted when Envoy closes the stream, just after the client's answer,
    # and reach the endpoint with the worker's next flush.
    scrape_until(edge, 'gen_ai_client_token_usage_count{gen_ai_token_type="output",model="gpt-4o-mini",provider="oa"}',
                 'edge_ext_cost_usd_total{model="gpt-4o-mini",provider="oa"}',
                 'gen_ai_server_request_duration_seconds_count{model="gpt-4o-mini",provider="oa"}',
                 'gen_ai_server_time_to_first_token_seconds_count{model="gpt-4o-mini",provider="oa"}',
                 'edge_ext_responses_total{provider="oa",status_class="2xx"}',
                 'edge_ext_tenant_cost_usd_total{tenant="anonymous"}',
                 'edge_ext_translations_total{client_api="openai",provider_api="anthropic"}')
