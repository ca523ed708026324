"""Embeddings and Anthropic token counting: parsing, the endpoint table, provider paths, and whole
requests through the policy (routing, the 2-message path, the cache, budgets, refusals), with no
event loop."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from edge_ext.apis import count_tokens, embeddings
from edge_ext.auth import hash_key
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.cost.pricing import load_pricing
from edge_ext.errors import InvalidRequest
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.endpoints import TABLE, dispatch
from edge_ext.policy.engine import Policy
from edge_ext.policy.route_step import CLUSTER_HEADER
from edge_ext.policy.outcome import Outcome
from edge_ext.policy.state import Endpoint, Phase
from edge_ext.providers.base import UnsupportedOperation, upstream_request
from edge_ext.providers.registry import adapter_for
from edge_ext.usage import from_openai
from tests.policy_world import World

KEY = "sk-operations-client"
CONFIG = f"""\
auth:
  keys: [{{id: k, sha256: "{hash_key(KEY)}", tenant: t}}]
cache: {{policy: always}}
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:9001", models: [text-embedding-3-small, mixed, gpt-4o-mini]}}
  - {{name: az, kind: azure_openai, base_url: "https://x.openai.azure.com", api_version: "2024-10-21", models: [ada],
      model_map: {{ada: my-ada-deployment}}}}
  - {{name: an, kind: anthropic, base_url: "http://127.0.0.1:9002", models: [claude-haiku-4-5, mixed]}}
"""
KEYS = {"oa": "sk-oa", "az": "sk-az", "an": "sk-an"}
EMBED_HEADERS = {":method": "POST", ":path": "/v1/embeddings", "authorization": f"Bearer {KEY}"}
COUNT_HEADERS = {":method": "POST", ":path": "/v1/messages/count_tokens", "x-api-key": KEY,
                 "anthropic-version": "2023-06-01"}


def embed_body(**fields) -> bytes:
    return json.dumps({"model": "text-embedding-3-small", "input": "hello world", **fields}).encode()


def count_body(**fields) -> bytes:
    return json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, inputs", [
    pytest.param("one text", 1, id="string"),
    pytest.param(["a", "b", "c"], 3, id="array-of-strings"),
    pytest.param([1, 2, 3], 1, id="token-ids"),
    pytest.param([[1, 2], [3]], 2, id="arrays-of-token-ids"),
    pytest.param(["x"] * embeddings.MAX_INPUTS, embeddings.MAX_INPUTS, id="at-the-limit"),
])
def test_embeddings_input_forms_openai_accepts(value, inputs):
    assert embeddings.check_input(value) == inputs
    request = embeddings.parse(embed_body(input=value))
    assert (request.operation, request.api, request.stream, request.model) == ("embeddings", "openai", False,
                                                                                 "text-embedding-3-small")


@pytest.mark.parametrize("fields, param", [
    pytest.param({"input": None}, "input", id="missing-input"),
    pytest.param({"input": ""}, "input", id="empty-string"),
    pytest.param({"input": []}, "input", id="empty-array"),
    pytest.param({"input": 5}, "input", id="number"),
    pytest.param({"input": {"text": "x"}}, "input", id="object"),
    pytest.param({"input": ["a", ""]}, "input", id="empty-string-item"),
    pytest.param({"input": ["a", 1]}, "input", id="mixed-items"),
    pytest.param({"input": [1, -2]}, "input", id="negative-token"),
    pytest.param({"input": [1, True]}, "input", id="boolean-token"),
    pytest.param({"input": [[1], []]}, "input", id="empty-token-array"),
    pytest.param({"input": [[1], "a"]}, "input", id="token-array-then-string"),
    pytest.param({"input": ["x"] * (embeddings.MAX_INPUTS + 1)}, "input", id="too-many-inputs"),
    pytest.param({"encoding_format": "int8"}, "encoding_format", id="encoding-format"),
    pytest.param({"dimensions": 0}, "dimensions", id="zero-dimensions"),
    pytest.param({"dimensions": "256"}, "dimensions", id="string-dimensions"),
    pytest.param({"user": 7}, "user", id="user-not-a-string"),
    pytest.param({"stream": True}, "stream", id="stream"),
    pytest.param({"model": None}, "model", id="missing-model"),
])
def test_embeddings_bad_input_is_a_400_naming_the_field(fields, param):
    body = json.loads(embed_body())
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequest) as info:
        embeddings.parse(json.dumps(body).encode())
    assert info.value.status == 400 and info.value.param == param


@pytest.mark.parametrize("raw", [b"", b"[]", b"{not json", b'{"model": "m", "model": "n", "input": "x"}'],
                         ids=["empty", "array", "not-json", "duplicate-key"])
def test_embeddings_body_must_be_one_json_object(raw):
    with pytest.raises(InvalidRequest):
        embeddings.parse(raw)


def test_count_tokens_takes_a_messages_body_without_max_tokens():
    request = count_tokens.parse(count_body(system="be brief", tools=[{"name": "t", "input_schema": {}}]))
    assert (request.operation, request.api, request.stream) == ("count_tokens", "anthropic", False)


@pytest.mark.parametrize("fields", [
    pytest.param({"stream": True}, id="stream"),
    pytest.param({"stream": False}, id="stream-false-is-no-field-of-this-api"),
    pytest.param({"messages": []}, id="no-messages"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, id="bad-role"),
    pytest.param({"model": 3}, id="model-not-a-string"),
])
def test_count_tokens_bad_input_is_a_400(fields):
    with pytest.raises(InvalidRequest):
        count_tokens.parse(count_body(**fields))


# -- the table and the providers ----------------------------------------------------------------
def test_the_new_endpoints_take_a_body_behind_auth_and_name_their_operation():
    embeddings_handler = dispatch("POST", "/v1/embeddings")
    counting = dispatch("POST", "/v1/messages/count_tokens")
    assert (embeddings_handler.endpoint, embeddings_handler.api.name, embeddings_handler.operation) == (
        Endpoint.EMBEDDINGS, "openai", "embeddings")
    assert (counting.endpoint, counting.api.name, counting.operation) == (Endpoint.COUNT_TOKENS, "anthropic",
                                                                          "count_tokens")
    for handler in (embeddings_handler, counting):
        assert handler.body and handler.response and handler.authenticated
    assert list(TABLE["/v1/embeddings"]) == ["POST"] and list(TABLE["/v1/messages/count_tokens"]) == ["POST"]


@pytest.mark.parametrize("name, operation, path", [
    pytest.param("oa", "embeddings", "/v1/embeddings", id="openai-embeddings"),
    pytest.param("oa", "chat", "/v1/chat/completions", id="openai-chat"),
    pytest.param("az", "embeddings", "/openai/deployments/dep/embeddings?api-version=2024-10-21", id="azure-embeddings"),
    pytest.param("an", "count_tokens", "/v1/messages/count_tokens", id="anthropic-count-tokens"),
    pytest.param("an", "chat", "/v1/messages", id="anthropic-chat"),
])
def test_each_provider_kind_names_the_path_of_what_it_serves(name, operation, path):
    provider = next(p for p in parse_config(CONFIG).providers if p.name == name)
    upstream = upstream_request(adapter_for(provider.kind), provider, "sk", "dep", {}, operation)
    assert upstream.path == path


@pytest.mark.parametrize("name, operation", [("an", "embeddings"), ("oa", "count_tokens"), ("az", "count_tokens")])
def test_a_provider_without_the_api_refuses_with_a_400(name, operation):
    provider = next(p for p in parse_config(CONFIG).providers if p.name == name)
    with pytest.raises(UnsupportedOperation) as info:
        upstream_request(adapter_for(provider.kind), provider, "sk", "m", {}, operation)
    assert info.value.status == 400


def test_embedding_models_are_priced_on_input_only():
    prices = load_pricing()
    for model in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):
        price = prices.price(model)
        assert price is not None and price.input > 0 and price.output == 0, model
    usage = from_openai({"object": "list", "usage": {"prompt_tokens": 1000, "total_tokens": 1000}})
    charge = Accounting(prices).charge("oa", "text-embedding-3-small", usage)
    assert charge.cost.priced and charge.cost.usd == Decimal("0.00002")
    assert ("tokens_in", "1000") in charge.metadata() and ("tokens_out", "0") in charge.metadata()


# -- whole requests -----------------------------------------------------------------------------
def make_policy(config: str = CONFIG, **services) -> Policy:
    return Policy(parse_config(config), FakeClock(), KEYS, wall=lambda: 1_700_000_000.0,
                  accounting=Accounting(load_pricing()), **services)


def send(policy, world, headers, body):
    st = policy.new_stream()
    step = world.run(policy, st, policy.on_request_headers(st, headers, False))
    if isinstance(step, Respond):
        return st, step
    return st, world.run(policy, st, policy.on_request_body(st, body))


def error_of(decision):
    assert isinstance(decision, Respond), decision
    return decision.status, json.loads(decision.body)


def test_an_uncacheable_embedding_is_routed_in_two_messages_with_its_usage_left_to_envoy():
    policy, world = make_policy(cache=True), World()
    st, routed = send(policy, world, {**EMBED_HEADERS, "cache-control": "no-store"}, embed_body())
    assert isinstance(routed, Continue) and routed.last  # answered without the processor
    headers, metadata = dict(routed.set_headers), dict(routed.metadata)
    assert headers[":path"] == "/v1/embeddings" and headers["authorization"] == "Bearer sk-oa"
    assert headers[CLUSTER_HEADER] and routed.body is None  # the client's bytes, untouched
    assert metadata["operation"] == "embeddings" and metadata["tenant"] == "t" and metadata["outcome"] == "1"
    assert "est_in" in metadata and "billed" not in metadata
    # Its outcome, with the usage Envoy extracted, prices it like a chat answer.
    st = policy.on_outcome(Outcome("r1", 200, "via_upstream", served="oa", attempts=1,
                                   usage={"prompt_tokens": 2000.0}, route=metadata))
    assert st.charge.usage.input_tokens == 2000 and st.charge.cost.usd == Decimal("0.00004")


def test_a_cacheable_embedding_is_read_stored_and_answered_from_the_cache_per_tenant():
    policy, world = make_policy(cache=True), World()
    st, routed = send(policy, world, EMBED_HEADERS, embed_body(input=["a", "b"]))
    assert isinstance(routed, Continue) and not routed.last and st.flight.recorder is not None
    answer = {"object": "list", "model": "text-embedding-3-small",
              "data": [{"object": "embedding", "index": i, "embedding": [0.5, -0.5]} for i in range(2)],
              "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    policy.on_response_headers(st, 200, {}, "via_upstream", served="oa", attempts=1)
    body = world.run(policy, st, policy.on_response_body(st, json.dumps(answer).encode(), True))
    assert ("tokens_in", "2") in body.metadata and list(world.cache) == [st.flight.key]
    world.end(policy, st)

    again, hit = send(policy, world, EMBED_HEADERS, embed_body(input=["a", "b"]))
    assert isinstance(hit, Respond) and ("x-edge-cache", "hit-l1") in hit.headers
    assert json.loads(hit.body) == answer and again.routed is None
    # A chat request never shares an embedding's key, nor does another tenant's embedding.
    assert again.flight.key == st.flight.key
    other = make_policy(CONFIG.replace("tenant: t}", "tenant: u}"), cache=True)
    other_st, _ = send(other, World(), EMBED_HEADERS, embed_body(input=["a", "b"]))
    assert other_st.flight.key != st.flight.key


def test_an_embedding_key_differs_from_a_chat_key_for_the_same_body():
    policy, world = make_policy(cache=True), World()
    body = json.dumps({"model": "gpt-4o-mini", "input": "x", "messages": [{"role": "user", "content": "x"}]}).encode()
    embedded, _ = send(policy, world, EMBED_HEADERS, body)
    chatted, _ = send(policy, world, {**EMBED_HEADERS, ":path": "/v1/chat/completions"}, body)
    assert embedded.flight.key != chatted.flight.key


def test_an_embedding_for_an_anthropic_model_is_a_clear_400_in_openai_shape():
    policy, world = make_policy(), World()
    st, refused = send(policy, world, EMBED_HEADERS, embed_body(model="claude-haiku-4-5"))
    status, body = error_of(refused)
    assert status == 400 and body["error"]["param"] == "model" and "embeddings API" in body["error"]["message"]
    assert st.routed is None


def test_a_mixed_model_group_sends_embeddings_only_to_openai_api_providers():
    policy, world = make_policy(), World()
    for _ in range(4):
        st, routed = send(policy, world, EMBED_HEADERS, embed_body(model="mixed"))
        assert isinstance(routed, Continue) and st.provider == "oa" and st.routed.plan == ("oa",)


def test_an_azure_embedding_goes_to_its_deployment_path():
    policy, world = make_policy(), World()
    st, routed = send(policy, world, EMBED_HEADERS, embed_body(model="ada"))
    headers = dict(routed.set_headers)
    assert headers[":path"] == "/openai/deployments/my-ada-deployment/embeddings?api-version=2024-10-21"
    assert headers["api-key"] == "sk-az" and json.loads(routed.body)["model"] == "my-ada-deployment"


def test_an_embedding_without_a_key_is_refused_before_its_body():
    policy, world = make_policy(), World()
    st, refused = send(policy, world, {k: v for k, v in EMBED_HEADERS.items() if k != "authorization"}, embed_body())
    assert error_of(refused)[0] == 401 and st.phase is Phase.DONE


def test_an_embedding_is_admitted_against_the_budgets():
    policy, world = make_policy(budgets=True), World()
    st, routed = send(policy, world, EMBED_HEADERS, embed_body())
    assert isinstance(routed, Continue) and world.asked[0].__name__ == "Admit" and st.admission is not None


def test_a_token_count_goes_to_the_anthropic_provider_free_and_uncached():
    policy, world = make_policy(cache=True, budgets=True), World()
    st, routed = send(policy, world, COUNT_HEADERS, count_body(model="mixed"))
    assert isinstance(routed, Continue) and routed.last and world.asked == []  # no budget, no cache
    headers, metadata = dict(routed.set_headers), dict(routed.metadata)
    assert headers[":path"] == "/v1/messages/count_tokens" and headers["x-api-key"] == "sk-an"
    assert "anthropic-version" in headers and st.routed.plan == ("an",)
    assert metadata["billed"] == "0" and metadata["operation"] == "count_tokens" and "est_in" not in metadata
    assert st.admission is None and st.flight is None
    outcome = policy.on_outcome(Outcome("r2", 200, "via_upstream", served="an", attempts=1, response_bytes=20,
                                        route=metadata))
    assert outcome.charge is None  # not billed, not even as estimated


def test_a_token_count_for_a_model_without_an_anthropic_provider_is_a_400_in_anthropic_shape():
    policy, world = make_policy(), World()
    _, refused = send(policy, world, COUNT_HEADERS, count_body(model="gpt-4o-mini"))
    status, body = error_of(refused)
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "token counting" in body["error"]["message"]


@pytest.mark.parametrize("extra, shape", [
    pytest.param({"authorization": f"Bearer {KEY}"}, "openai", id="bearer"),
    pytest.param({"x-api-key": KEY}, "anthropic", id="x-api-key-alone"),
    pytest.param({"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}, "anthropic",
                 id="anthropic-version"),
    pytest.param({"x-api-key": KEY, "authorization": f"Bearer {KEY}"}, "openai", id="both-keys"),
])
def test_the_model_list_takes_the_shape_the_callers_headers_ask_for(extra, shape):
    policy = make_policy()
    st = policy.new_stream()
    listed = policy.on_request_headers(st, {":method": "GET", ":path": "/v1/models", **extra}, True)
    assert isinstance(listed, Respond) and listed.status == 200
    body = json.loads(listed.body)
    if shape == "openai":
        assert body["object"] == "list" and body["data"][0]["object"] == "model"
    else:
        ids = [m["id"] for m in body["data"]]
        assert body["has_more"] is False and body["first_id"] == ids[0] and body["last_id"] == ids[-1]
        first = body["data"][0]
        assert first["type"] == "model" and first["display_name"] and first["created_at"] == "2023-11-14T22:13:20Z"


def test_an_embedding_is_cached_under_the_default_temperature_zero_policy():
    policy, world = make_policy(CONFIG.replace("cache: {policy: always}", "cache: {policy: temperature_zero}"),
                                cache=True), World()
    st, _ = send(policy, world, EMBED_HEADERS, embed_body())
    assert st.cache_status == "miss" and st.flight is not None
    chat, _ = send(policy, world, {**EMBED_HEADERS, ":path": "/v1/chat/completions"},
                   json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).encode())
    assert chat.cache_status == "bypass"  # a chat answer without temperature 0 is not


@pytest.mark.parametrize("pii", ["redact", "block"])
def test_embedding_input_passes_the_prompt_pii_policy(pii):
    policy, world = make_policy(CONFIG.replace("tenant: t}", f"tenant: t, pii: {pii}}}")), World()
    _, decision = send(policy, world, {**EMBED_HEADERS, "cache-control": "no-store"},
                       embed_body(input=["mail jane.doe@example.com please", "nothing here"]))
    if pii == "block":
        status, body = error_of(decision)
        assert status == 400 and body["error"]["code"] == "pii_detected"
    else:
        assert isinstance(decision, Continue)
        sent = json.loads(decision.body)["input"]
        assert "jane.doe@example.com" not in sent[0] and sent[1] == "nothing here"
