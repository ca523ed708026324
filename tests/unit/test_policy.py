import json

import pytest

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.policy.decisions import Continue, Mode, Respond, ResponseMode
from edge_ext.policy.engine import Policy
from edge_ext.policy.route_step import CLUSTER_HEADER

CONFIG = """\
processor: {max_body_bytes: 2048}
providers:
  - name: openai-main
    kind: openai
    base_url: http://127.0.0.1:18080
    api_key_env: OPENAI_API_KEY
    models: [gpt-4o-mini]
  - name: local
    kind: openai_compatible
    base_url: http://127.0.0.1:8000/prefix
    models: [llama]
    model_map: {small: llama-3.1-8b}
  - name: keyless
    kind: openai
    base_url: https://api.openai.com
    api_key_env: MISSING_KEY
    models: [gpt-4.1]
"""


@pytest.fixture
def policy():
    return Policy(parse_config(CONFIG), FakeClock(), {"openai-main": "sk-provider", "local": None, "keyless": None})


def headers(method="POST", path="/v1/chat/completions", **extra):
    h = {":method": method, ":path": path, "x-request-id": "rid-1", "authorization": "Bearer client-key"}
    h.update({k.replace("_", "-"): v for k, v in extra.items()})
    return h


def chat(model="gpt-4o-mini", **extra):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}).encode()


def error_of(decision):
    assert isinstance(decision, Respond), decision
    body = json.loads(decision.body)
    assert ("content-type", "application/json") in decision.headers
    return decision.status, body["error"]["code"]


HEADER_CASES = [
    pytest.param(headers(path="/v2/unknown"), False, (404, "unknown_url"), id="unknown-path-404"),
    pytest.param(headers(method="GET"), True, (405, "method_not_allowed"), id="get-on-chat-405"),
    pytest.param(headers(content_length="4096"), False, (413, "request_too_large"), id="content-length-over-limit-413"),
    pytest.param(headers(), True, (400, "invalid_request"), id="post-without-body-400"),
]


@pytest.mark.parametrize("hdrs, end_of_stream, expected", HEADER_CASES)
def test_request_headers_rejections(policy, hdrs, end_of_stream, expected):
    st = policy.new_stream()
    assert error_of(policy.on_request_headers(st, hdrs, end_of_stream)) == expected


@pytest.mark.parametrize("path", ["/health", "/health/ready"], ids=["health", "health-ready"])
def test_health_paths_continue(policy, path):
    st = policy.new_stream()
    assert policy.on_request_headers(st, headers(method="GET", path=path), True) == Continue()


def test_chat_headers_continue_ask_for_response_headers_and_name_the_api(policy):
    st = policy.new_stream()
    decision = policy.on_request_headers(st, headers(content_length="100"), False)
    assert isinstance(decision, Continue) and not decision.set_headers
    assert decision.mode == Mode(response_headers=True, response_body=ResponseMode.NONE)
    assert dict(decision.metadata) == {"api": "openai"}
    assert st.request_id == "rid-1"


BODY_CASES = [
    pytest.param(b"{nope", (400, "invalid_json"), id="malformed-json-400"),
    pytest.param(b"\xff\xfe", (400, "invalid_json"), id="invalid-utf8-400"),
    pytest.param(b"[1,2]", (400, "invalid_request"), id="json-array-400"),
    pytest.param(b"", (400, "invalid_request"), id="empty-body-400"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), (400, "invalid_request"), id="missing-model-400"),
    pytest.param(chat(stream="yes"), (400, "invalid_request"), id="stream-not-boolean-400"),
    pytest.param(chat(model="gpt-99"), (404, "model_not_found"), id="unknown-model-404"),
    pytest.param(chat(model="gpt-4.1"), (503, "provider_key_missing"), id="provider-without-key-503"),
    pytest.param(b"x" * 4096, (413, "request_too_large"), id="body-over-limit-413"),
]


@pytest.mark.parametrize("body, expected", BODY_CASES)
def test_request_body_rejections(policy, body, expected):
    st = policy.new_stream()
    policy.on_request_headers(st, headers(), False)
    assert error_of(policy.on_request_body(st, body)) == expected


def test_routed_request_sets_cluster_path_and_provider_credentials(policy):
    st = policy.new_stream()
    policy.on_request_headers(st, headers(), False)
    decision = policy.on_request_body(st, chat())
    assert isinstance(decision, Continue)
    set_headers = dict(decision.set_headers)
    assert set_headers[CLUSTER_HEADER] == "provider_openai-main"
    assert set_headers[":path"] == "/v1/chat/completions"
    assert set_headers["authorization"] == "Bearer sk-provider"
    # The client's key is replaced, and other credential styles are stripped.
    assert set(decision.remove_headers) == {"x-api-key", "api-key", "anthropic-version", "anthropic-beta"}
    assert decision.clear_route_cache
    assert decision.body is None  # forwarded untouched
    assert dict(decision.metadata)["provider"] == "openai-main"
    assert decision.mode is None
    assert (st.provider, st.model, st.outcome) == ("openai-main", "gpt-4o-mini", "routed")


def test_model_map_rewrites_body_and_path_prefix_and_keyless_provider_strips_client_key(policy):
    st = policy.new_stream()
    policy.on_request_headers(st, headers(), False)
    decision = policy.on_request_body(st, chat(model="small", temperature=0))
    set_headers = dict(decision.set_headers)
    assert set_headers[":path"] == "/prefix/v1/chat/completions"
    assert "authorization" not in set_headers
    assert "authorization" in decision.remove_headers
    assert json.loads(decision.body) == {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert set_headers["content-length"] == str(len(decision.body))


def test_unknown_extra_fields_pass_through(policy):
    st = policy.new_stream()
    policy.on_request_headers(st, headers(), False)
    decision = policy.on_request_body(st, chat(some_new_field={"x": 1}))
    assert isinstance(decision, Continue) and decision.body is None


ANTHROPIC_CONFIG = """\
providers:
  - name: claude
    kind: anthropic
    base_url: http://127.0.0.1:18081
    models: [claude-x]
"""


def translated_stream(body: dict):
    policy = Policy(parse_config(ANTHROPIC_CONFIG), FakeClock(), {"claude": None}, wall=lambda: 1700000000)
    st = policy.new_stream()
    policy.on_request_headers(st, headers(), False)
    decision = policy.on_request_body(st, chat(model="claude-x", **body))
    assert isinstance(decision, Continue)
    return policy, st, decision


def test_openai_request_for_anthropic_provider_is_translated_with_default_max_tokens():
    _, _, decision = translated_stream({})
    sent = json.loads(decision.body)
    assert sent["max_tokens"] == 4096 and sent["model"] == "claude-x"
    assert dict(decision.set_headers)[":path"] == "/v1/messages"
    assert dict(decision.set_headers)["content-length"] == str(len(decision.body))


@pytest.mark.parametrize(
    "status, stream, mode",
    [(200, False, ResponseMode.BUFFERED), (200, True, ResponseMode.STREAMED), (429, True, ResponseMode.BUFFERED)],
    ids=["json-answer-buffered", "stream-streamed", "stream-request-error-buffered"],
)
def test_response_mode_follows_status_and_stream(status, stream, mode):
    policy, st, _ = translated_stream({"stream": stream})
    decision = policy.on_response_headers(st, status, {})
    assert decision.mode.response_body is mode


def test_untranslatable_answer_becomes_502_in_the_callers_shape(policy):
    # An Anthropic client served by OpenAI, whose tool call arguments are not JSON.
    st = policy.new_stream()
    policy.on_request_headers(st, headers(path="/v1/messages", **{"anthropic-version": "2023-06-01"}), False)
    policy.on_request_body(st, chat(max_tokens=10))
    policy.on_response_headers(st, 200, {})
    bad = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    decision = policy.on_response_body(st, json.dumps(bad).encode(), True)
    assert dict(decision.set_headers)[":status"] == "502"
    assert json.loads(decision.body)["type"] == "error"


def test_cut_stream_ends_with_an_error_event():
    policy, st, _ = translated_stream({"stream": True})
    policy.on_response_headers(st, 200, {})
    start = b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    first = policy.on_response_body(st, start + b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,", False)
    assert first.body.startswith(b"data: ")
    last = policy.on_response_body(st, b"", True)
    assert b'"error"' in last.body and b"[DONE]" not in last.body
