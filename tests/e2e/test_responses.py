"""The OpenAI Responses API through real Envoy, with the official openai SDK: routed, authenticated,
accounted, cached when not stateful, budgeted; refused for a model no provider can answer it for."""

import json
import time

import openai
import pytest

from edge_ext.auth import hash_key
from tests.keys import RESPONSES_BUDGET_KEY, RESPONSES_KEY
from tests.support import edge_config, http, scrape_until, start_edge, start_mock, stop


@pytest.fixture(scope="module")
def mock():
    started = start_mock("responses-mock")
    yield started
    stop(started.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("responses")
    providers = [
        {"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini", "gpt-4.1-mini"]},
        {"name": "an", "kind": "anthropic", "base_url": mock.url, "models": ["claude-sonnet-4-6"]},
        {"name": "az", "kind": "azure_openai", "base_url": mock.url, "api_version": "2024-10-21",
         "model_map": {"gpt-4o": "my-gpt-4o-deployment"}},
    ]
    auth = {"keys": [{"id": "resp", "sha256": hash_key(RESPONSES_KEY), "tenant": "acme"}]}
    running = start_edge(tmp, edge_config(tmp, providers, auth=auth, cache={"policy": "always"}))
    yield running
    assert stop(running.proc) == 0, running.log()


def client(edge, key=RESPONSES_KEY):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def upstream(mock):
    return [(r["path"], r.get("query", "")) for r in mock.requests()]


def test_a_json_response_is_routed_by_model_and_accounted(edge, mock):
    raw = client(edge).responses.with_raw_response.create(model="gpt-4o-mini", input="Say hello", store=False)
    response = raw.parse()
    assert response.status == "completed" and response.output_text.startswith("Mock reply to: Say hello")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert raw.headers["x-edge-provider"] == "oa" and float(raw.headers["x-edge-cost-usd"]) > 0
    assert upstream(mock) == [("/v1/responses", "")]
    scrape_until(edge, 'gen_ai_client_token_usage_count{gen_ai_token_type="output",model="gpt-4o-mini",provider="oa"}',
                 'edge_ext_cost_usd_total{model="gpt-4o-mini",provider="oa"}',
                 'edge_ext_tenant_cost_usd_total{tenant="acme"}')


def test_a_streamed_response_ends_with_its_usage(edge, mock):
    events = list(client(edge).responses.create(model="gpt-4o-mini", input="Stream to me", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == final.output_text and final.usage.output_tokens > 0 and final.usage.total_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_store_false_request_is_answered_from_cache_on_repeat(edge, mock, stream):
    ask = {"model": "gpt-4o-mini", "input": f"cache me ({stream})", "store": False}
    first = client(edge).responses.create(**ask)
    if stream:
        events = list(client(edge).responses.create(**ask, stream=True))
        assert events[-1].type == "response.completed" and events[-1].response.output_text == first.output_text
        assert events[-1].response.usage.output_tokens == first.usage.output_tokens
    else:
        raw = client(edge).responses.with_raw_response.create(**ask)
        assert raw.headers["x-edge-cache"].startswith("hit") and raw.parse().output_text == first.output_text
    assert len(mock.requests()) == 1


@pytest.mark.parametrize("state", [{"store": False, "previous_response_id": "resp_earlier"}, {}],
                         ids=["previous-response", "store-default-true"])
def test_a_stateful_request_is_never_cached(edge, mock, state):
    for _ in range(2):
        raw = client(edge).responses.with_raw_response.create(model="gpt-4o-mini", input="remember me", **state)
        assert raw.headers["x-edge-cache"] == "bypass"
    assert len(mock.requests()) == 2


def test_a_plain_stateful_response_takes_two_messages_and_is_accounted_from_its_outcome(edge, mock):
    names = ("stream_msgs_received", "server_half_closed")
    before = {n: edge.envoy_stat(f"http.edge.ext_proc.{n}") for n in names}
    raw = client(edge).responses.with_raw_response.create(model="gpt-4.1-mini", input="two messages")
    assert raw.parse().usage.output_tokens > 0 and raw.headers["x-edge-cache"] == "bypass"
    after = {n: edge.envoy_stat(f"http.edge.ext_proc.{n}") for n in names}
    # Request headers and body; the processor ended the stream; Envoy read the usage.
    assert {n: after[n] - before[n] for n in names} == {"stream_msgs_received": 2, "server_half_closed": 1}
    assert "x-edge-cost-usd" not in raw.headers
    scrape_until(edge, 'gen_ai_client_token_usage_count{gen_ai_token_type="output",model="gpt-4.1-mini",provider="oa"}',
                 'edge_ext_cost_usd_total{model="gpt-4.1-mini",provider="oa"}')


def test_a_stream_cut_before_completed_never_looks_clean_and_is_charged_as_estimated(edge, mock):
    # After some events reached the client: the edge ends the stream with an error event of the
    # API's own shape (the SDK hands it over as an event), or the client sees the reset.
    mock.faults(headers={"x-mock-drop": "mid-stream", "x-mock-drop-after": "6", "x-mock-chunk-delay-ms": "100"})
    events = []
    try:
        for event in client(edge).responses.create(model="gpt-4o-mini", input="cut me", stream=True):
            events.append(event)
    except (openai.APIConnectionError, openai.APIStatusError):
        pass
    assert events and all(e.type != "response.completed" for e in events)
    if events[-1].type == "error":
        assert events[-1].code == "stream_truncated"
    scrape_until(edge, 'edge_ext_estimated_tokens_total{tenant="acme"}')


def test_azure_serves_it_on_its_v1_path_with_the_deployment_in_the_body(edge, mock):
    response = client(edge).responses.create(model="gpt-4o", input="Azure please", store=False)
    assert response.status == "completed"
    [record] = mock.requests()
    assert record["path"] == "/openai/v1/responses" and json.loads(record["body"])["model"] == "my-gpt-4o-deployment"


def test_a_model_only_anthropic_serves_is_refused_400(edge, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client(edge).responses.create(model="claude-sonnet-4-6", input="hi")
    error = info.value.body
    assert error["param"] == "model" and error["code"] == "invalid_request" and "'claude-sonnet-4-6'" in error["message"]
    assert mock.requests() == []


def test_no_key_no_answer(edge, mock):
    with pytest.raises(openai.AuthenticationError):
        client(edge, key="sk-not-a-key").responses.create(model="gpt-4o-mini", input="hi")
    assert mock.requests() == []


@pytest.mark.parametrize("body, param", [
    pytest.param({"input": "hi"}, "model", id="missing-model"),
    pytest.param({"model": "gpt-4o-mini", "input": 42}, "input", id="input-a-number"),
    pytest.param({"model": "gpt-4o-mini", "input": "hi", "stream": "yes"}, "stream", id="stream-a-string"),
])
def test_bad_input_is_refused_400_in_openai_shape(edge, mock, body, param):
    status, _, raw = http("POST", f"{edge.url}/v1/responses", json.dumps(body).encode(),
                          {"authorization": f"Bearer {RESPONSES_KEY}", "content-type": "application/json"})
    error = json.loads(raw)["error"]
    assert status == 400 and error["type"] == "invalid_request_error" and error["param"] == param
    assert mock.requests() == []


def test_a_budget_that_runs_out_refuses_responses_too(tmp_path, mock):
    providers = [{"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o"]}]
    auth = {"keys": [{"id": "team-r", "sha256": hash_key(RESPONSES_BUDGET_KEY), "tenant": "acme"}]}
    limits = [{"scope": "key", "id": "team-r", "period": "daily", "limit_usd": 0.0003}]
    edge = start_edge(tmp_path, edge_config(tmp_path, providers, auth=auth, budgets={"limits": limits},
                                            cache={"enabled": False}))
    try:
        mock.faults(headers={"x-mock-output-words": "20"}, count=20)
        served, refused = 0, None
        for _ in range(20):
            try:
                client(edge, RESPONSES_BUDGET_KEY).responses.create(model="gpt-4o", input="spend a little")
                served += 1
                time.sleep(0.2)  # spend is recorded after the answer, in the background
            except openai.RateLimitError as err:
                refused = err
                break
        assert refused is not None and 1 <= served <= 10 and refused.body["code"] == "budget_exceeded"
    finally:
        assert stop(edge.proc) == 0, edge.log()
