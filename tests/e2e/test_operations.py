"""Embeddings, Anthropic token counting and both model lists, through real Envoy with the official
SDKs and the bundled mock provider (OpenAI, Azure and Anthropic routes in one process)."""

import json

import anthropic
import openai
import pytest

from edge_ext.auth import hash_key
from tests.keys import (OPERATIONS_ANTHROPIC_KEY, OPERATIONS_AZURE_KEY, OPERATIONS_CHEAP_KEY, OPERATIONS_KEY_A,
                        OPERATIONS_KEY_B, OPERATIONS_OPENAI_KEY)
from tests.support import edge_config, http, scrape_until, start_edge, start_mock, stop, wait_until

EMBEDDING = "text-embedding-3-small"
LONG_TEXT = " ".join(f"word{i}" for i in range(400))  # 400 tokens for the mock


@pytest.fixture(scope="module")
def mock():
    started = start_mock("operations-mock", "--openai-key", OPERATIONS_OPENAI_KEY,
                         "--anthropic-key", OPERATIONS_ANTHROPIC_KEY, "--azure-key", OPERATIONS_AZURE_KEY)
    yield started
    stop(started.proc)


@pytest.fixture(autouse=True)
def clean(mock):
    mock.clear()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("operations")
    providers = [
        {"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "OPS_OPENAI",
         "models": [EMBEDDING, "gpt-4o-mini"]},
        {"name": "az", "kind": "azure_openai", "base_url": mock.url, "api_key_env": "OPS_AZURE",
         "api_version": "2024-10-21", "models": ["azure-embedding"], "model_map": {"azure-embedding": "embed-deployment"}},
        {"name": "an", "kind": "anthropic", "base_url": mock.url, "api_key_env": "OPS_ANTHROPIC",
         "models": ["claude-haiku-4-5"]},
    ]
    auth = {"keys": [{"id": "key-a", "sha256": hash_key(OPERATIONS_KEY_A), "tenant": "alpha"},
                     {"id": "key-b", "sha256": hash_key(OPERATIONS_KEY_B), "tenant": "beta"},
                     {"id": "cheap", "sha256": hash_key(OPERATIONS_CHEAP_KEY), "tenant": "cheap"}]}
    # 400 tokens of text-embedding-3-small cost $0.000008: the cheap tenant affords two.
    budgets = {"limits": [{"scope": "tenant", "id": "cheap", "period": "daily", "limit_usd": 0.00002}]}
    config = edge_config(tmp, providers, auth=auth, budgets=budgets)
    running = start_edge(tmp, config, env={"OPS_OPENAI": OPERATIONS_OPENAI_KEY, "OPS_AZURE": OPERATIONS_AZURE_KEY,
                                           "OPS_ANTHROPIC": OPERATIONS_ANTHROPIC_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def oai(edge, key=OPERATIONS_KEY_A):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def ant(edge, key=OPERATIONS_KEY_A):
    return anthropic.Anthropic(base_url=edge.url, api_key=key, max_retries=0)


def provider_calls(mock, path):
    return [r for r in mock.requests() if r["path"].split("?")[0] == path]


def test_embedding_of_one_text_and_of_a_list(edge, mock):
    one = oai(edge).embeddings.create(model=EMBEDDING, input="hello there", extra_headers={"cache-control": "no-store"})
    assert len(one.data) == 1 and len(one.data[0].embedding) > 0 and one.usage.prompt_tokens == 2
    many = oai(edge).embeddings.create(model=EMBEDDING, input=["one", "two words", "three more words"],
                                       encoding_format="float")
    assert [d.index for d in many.data] == [0, 1, 2] and many.usage.prompt_tokens == 6
    [first, second] = provider_calls(mock, "/v1/embeddings")
    # The edge's key, never the client's.
    assert first["headers"]["authorization"] == f"Bearer {OPERATIONS_OPENAI_KEY}"


def test_a_repeated_embedding_is_answered_from_the_cache_per_tenant(edge, mock):
    raw = oai(edge).embeddings.with_raw_response.create(model=EMBEDDING, input="cache me please")
    assert raw.headers["x-edge-cache"] == "miss"
    again = oai(edge).embeddings.with_raw_response.create(model=EMBEDDING, input="cache me please")
    assert again.headers["x-edge-cache"].startswith("hit")
    assert again.parse().data[0].embedding == raw.parse().data[0].embedding
    other = oai(edge, OPERATIONS_KEY_B).embeddings.with_raw_response.create(model=EMBEDDING, input="cache me please")
    assert other.headers["x-edge-cache"] == "miss"  # another tenant never gets the first one's entry
    assert len(provider_calls(mock, "/v1/embeddings")) == 2


def test_azure_embedding_goes_to_the_deployment(edge, mock):
    answer = oai(edge).embeddings.create(model="azure-embedding", input="to azure")
    assert answer.data[0].embedding
    [seen] = provider_calls(mock, "/openai/deployments/embed-deployment/embeddings")
    assert seen["headers"]["api-key"] == OPERATIONS_AZURE_KEY and "authorization" not in seen["headers"]


def test_embedding_without_a_key_is_refused(edge, mock):
    with pytest.raises(openai.AuthenticationError):
        oai(edge, "sk-nobody").embeddings.create(model=EMBEDDING, input="let me in")
    assert provider_calls(mock, "/v1/embeddings") == []


@pytest.mark.parametrize("kwargs, param", [
    pytest.param({"model": "claude-haiku-4-5", "input": "x"}, "model", id="anthropic-model"),
    pytest.param({"model": EMBEDDING, "input": []}, "input", id="empty-input"),
    pytest.param({"model": EMBEDDING, "input": "x", "encoding_format": "int8"}, "encoding_format", id="encoding"),
])
def test_embedding_refusals_are_clear_400s(edge, mock, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        oai(edge).embeddings.create(**kwargs)
    assert info.value.body["param"] == param and info.value.body["message"]
    assert provider_calls(mock, "/v1/embeddings") == []


def test_embedding_budget_refuses_once_spent(edge):
    client = oai(edge, OPERATIONS_CHEAP_KEY)
    served, refused = 0, None
    for i in range(8):
        try:
            client.embeddings.create(model=EMBEDDING, input=f"{i} {LONG_TEXT}")
            served += 1
        except openai.RateLimitError as err:
            refused = err
            break
        # Spend is recorded from the outcome, a flush interval after the answer.
        scrape_until(edge, 'edge_ext_tenant_cost_usd_total{tenant="cheap"}')
    assert refused is not None and 1 <= served <= 4, served
    assert refused.body["code"] == "budget_exceeded"


def test_an_uncached_embedding_takes_two_messages_and_reaches_metrics_and_the_access_log(edge):
    closed = edge.envoy_stat("http.edge.ext_proc.server_half_closed")
    raw = oai(edge, OPERATIONS_KEY_B).embeddings.with_raw_response.create(
        model=EMBEDDING, input="metrics words here", extra_headers={"cache-control": "no-store"})
    # The processor ended the stream after the request body: the answer was never shown to it.
    assert edge.envoy_stat("http.edge.ext_proc.server_half_closed") == closed + 1
    request_id = raw.headers["x-request-id"]

    def logged():
        return [json.loads(line) for line in edge.log().splitlines()
                if line.startswith("{") and request_id in line and '"usage"' in line]

    wait_until(lambda: logged(), timeout=10, what="access log line")
    (line,) = logged()
    assert line["usage"]["prompt_tokens"] == raw.parse().usage.prompt_tokens == 3
    scrape_until(edge, f'gen_ai_client_token_usage_count{{gen_ai_token_type="input",model="{EMBEDDING}",provider="oa"}}',
                 f'edge_ext_cost_usd_total{{model="{EMBEDDING}",provider="oa"}}',
                 'edge_ext_tenant_cost_usd_total{tenant="beta"}')


def test_anthropic_token_count(edge, mock):
    messages = [{"role": "user", "content": "count these five words"}]
    counted = ant(edge).messages.count_tokens(model="claude-haiku-4-5", messages=messages, system="be brief")
    assert counted.input_tokens > 0
    [seen] = provider_calls(mock, "/v1/messages/count_tokens")
    assert seen["headers"]["x-api-key"] == OPERATIONS_ANTHROPIC_KEY
    # The mock's own count of the same prompt in a Messages request's usage.
    answer = ant(edge).messages.create(model="claude-haiku-4-5", max_tokens=20, messages=messages, system="be brief")
    assert answer.usage.input_tokens == counted.input_tokens


def test_token_count_of_a_model_without_anthropic_provider_is_a_400(edge, mock):
    with pytest.raises(anthropic.BadRequestError) as info:
        ant(edge).messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["type"] == "error" and "token counting" in info.value.body["error"]["message"]
    assert provider_calls(mock, "/v1/messages/count_tokens") == []


def test_token_count_without_a_key_is_refused(edge, mock):
    with pytest.raises(anthropic.AuthenticationError):
        ant(edge, "sk-nobody").messages.count_tokens(model="claude-haiku-4-5",
                                                    messages=[{"role": "user", "content": "hi"}])


def test_model_list_in_each_sdks_shape(edge):
    openai_ids = [m.id for m in oai(edge).models.list()]
    anthropic_page = ant(edge).models.list()
    anthropic_ids = [m.id for m in anthropic_page.data]
    assert openai_ids == anthropic_ids and EMBEDDING in openai_ids and "claude-haiku-4-5" in openai_ids
    first = anthropic_page.data[0]
    assert first.type == "model" and first.display_name and first.created_at.year >= 2024
    assert anthropic_page.first_id == anthropic_ids[0] and anthropic_page.last_id == anthropic_ids[-1]
    assert anthropic_page.has_more is False


@pytest.mark.parametrize("headers, shape", [
    pytest.param({"x-api-key": OPERATIONS_KEY_A}, "anthropic", id="x-api-key-alone"),
    pytest.param({"authorization": f"Bearer {OPERATIONS_KEY_A}"}, "openai", id="bearer"),
    pytest.param({"x-api-key": OPERATIONS_KEY_A, "authorization": f"Bearer {OPERATIONS_KEY_A}"}, "openai", id="both"),
])
def test_model_list_shape_follows_the_callers_headers(edge, headers, shape):
    status, _, body = http("GET", f"{edge.url}/v1/models", headers=headers)
    listed = json.loads(body)
    assert status == 200
    assert ("has_more" in listed and listed["data"][0]["type"] == "model") if shape == "anthropic" else (
        listed["object"] == "list")
