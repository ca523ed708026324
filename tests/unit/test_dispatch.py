"""The closed endpoint table: one handler per (method, path), declared phases, and nothing routed
to a provider without passing auth."""

import json

import pytest

from edge_ext.auth import hash_key
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.errors import MethodNotAllowed, UnsupportedPath
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.endpoints import TABLE, dispatch
from edge_ext.policy.engine import Policy

KEY = "sk-dispatch-client"
CONFIG = f"""\
auth:
  keys: [{{id: k, sha256: "{hash_key(KEY)}", tenant: t}}]
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}}
"""
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def policy():
    return Policy(parse_config(CONFIG), FakeClock(), {"oa": None})


def headers(method, path, key=KEY, **extra):
    h = {":method": method, ":path": path, **extra}
    if key:
        h["authorization"] = f"Bearer {key}"
    return h


def status_of(decision):
    assert isinstance(decision, Respond), decision
    body = json.loads(decision.body)
    return decision.status, body["error"]["code"] if "error" in body else None


BODY_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings", "/v1/messages/count_tokens")


def test_every_path_has_one_handler_per_method_and_only_provider_calls_take_a_body():
    for path, methods in TABLE.items():
        assert methods, path
        for method, handler in methods.items():
            assert handler.body == (path in BODY_PATHS), (method, path)
            # Only a handler behind auth may take a body: nothing else can reach a provider.
            assert not handler.body or handler.authenticated


@pytest.mark.parametrize("method, path, error, allow", [
    pytest.param("GET", "/v2/nope", UnsupportedPath, None, id="unknown-path"),
    pytest.param("POST", "/health/", UnsupportedPath, None, id="health-trailing-slash-is-another-path"),
    pytest.param("POST", "/health", MethodNotAllowed, "GET, HEAD", id="post-health"),
    pytest.param("DELETE", "/health/ready", MethodNotAllowed, "GET, HEAD", id="delete-health-ready"),
    pytest.param("GET", "/v1/chat/completions", MethodNotAllowed, "POST", id="get-chat"),
    pytest.param("POST", "/v1/models", MethodNotAllowed, "GET", id="post-models"),
])
def test_dispatch_refuses_what_the_table_lacks(method, path, error, allow):
    with pytest.raises(error) as info:
        dispatch(method, path)
    assert dict(info.value.headers).get("allow") == allow


HEADER_CASES = [
    pytest.param("GET", "/health", True, None, id="get-health-continues"),
    pytest.param("HEAD", "/health/ready", True, None, id="head-health-ready-continues"),
    pytest.param("GET", "/health?probe=1", True, None, id="query-string-ignored"),
    pytest.param("GET", "/health", False, (400, "body_not_allowed"), id="get-health-with-a-body"),
    pytest.param("POST", "/health", False, (405, "method_not_allowed"), id="post-health"),
    pytest.param("PUT", "/health/ready?x=1", False, (405, "method_not_allowed"), id="put-health-ready-query"),
    pytest.param("POST", "/health/live", False, (405, "method_not_allowed"), id="post-health-live"),
    pytest.param("GET", "/v1/models", False, (400, "body_not_allowed"), id="models-with-a-body"),
    pytest.param("POST", "/v1/chat", False, (404, "unknown_url"), id="unknown-path"),
]


@pytest.mark.parametrize("method, path, end_of_stream, expected", HEADER_CASES)
def test_headers_phase_follows_the_table(policy, method, path, end_of_stream, expected):
    st = policy.new_stream()
    decision = policy.on_request_headers(st, headers(method, path, key=None), end_of_stream)
    if expected is None:
        assert decision == Continue()  # no mutation, no route cache cleared: never re-matched
        assert st.caller is None
    else:
        assert status_of(decision) == expected


def test_405_names_the_allowed_methods(policy):
    decision = policy.on_request_headers(policy.new_stream(), headers("POST", "/health"), False)
    assert ("allow", "GET, HEAD") in decision.headers


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
def test_a_body_reaching_a_health_stream_is_refused_and_never_routed(policy, path):
    # Envoy's route sends no body to the processor here; if a filter config did, we fail closed.
    st = policy.new_stream()
    assert policy.on_request_headers(st, headers("GET", path), True) == Continue()
    decision = policy.on_request_body(st, CHAT)
    assert status_of(decision) == (400, "body_not_allowed")
    assert st.provider == "" and not st.breaker_pending


def test_a_body_without_headers_is_refused(policy):
    decision = policy.on_request_body(policy.new_stream(), CHAT)
    assert status_of(decision) == (400, "body_not_allowed")


def test_a_chat_body_after_refused_headers_is_never_routed(policy):
    st = policy.new_stream()
    assert status_of(policy.on_request_headers(st, headers("POST", "/v1/chat/completions", key="sk-wrong"), False)) == \
        (401, "invalid_api_key")
    assert status_of(policy.on_request_body(st, CHAT)) == (401, "invalid_api_key")


def test_an_authenticated_chat_request_is_routed(policy):
    st = policy.new_stream()
    assert isinstance(policy.on_request_headers(st, headers("POST", "/v1/chat/completions"), False), Continue)
    decision = policy.on_request_body(st, CHAT)
    assert isinstance(decision, Continue) and dict(decision.set_headers)["x-edge-cluster"] == "provider_oa"
    assert dict(decision.metadata)["key_id"] == "k"
