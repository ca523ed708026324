"""A hostile client against the endpoint table, through real Envoy with client keys configured:
health endpoints never reach a provider."""

import json

import httpx2
import pytest

from tests.hostile import ANTHROPIC_PROVIDER_KEY, KEY_ACME, OPENAI_PROVIDER_KEY, hostile_config, post, provider_env
from tests.support import http, start_edge, start_mock, stop, wait_until

OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def mocks():
    started = (start_mock("hd-openai", "--openai-key", OPENAI_PROVIDER_KEY),
               start_mock("hd-anthropic", "--anthropic-key", ANTHROPIC_PROVIDER_KEY))
    yield started
    for mock in started:
        stop(mock.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mocks):
    tmp = tmp_path_factory.mktemp("hostile-dispatch")
    running = start_edge(tmp, hostile_config(tmp, *mocks), env=provider_env())
    yield running
    assert stop(running.proc) == 0, running.log()


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks:
        mock.clear()


def provider_calls(mocks) -> int:
    return sum(len(mock.requests()) for mock in mocks)


def access_lines(edge, request_ids: list[str]) -> dict[str, dict]:
    """Envoy's access log entries of these requests (Envoy flushes its log every few seconds)."""
    found: dict[str, dict] = {}

    def logged():
        for line in edge.log().splitlines():
            if line.startswith("{") and '"request_id"' in line:
                entry = json.loads(line)
                if entry.get("request_id") in request_ids:
                    found[entry["request_id"]] = entry
        return len(found) == len(request_ids)

    wait_until(logged, timeout=30, what="access log lines")
    return found


def h2_request(method: str, url: str, body: bytes | None, headers: dict) -> httpx2.Response:
    """One request over cleartext HTTP/2 (prior knowledge), as h2c clients send it."""
    with httpx2.Client(http1=False, http2=True, timeout=10) as client:
        response = client.request(method, url, content=body, headers=headers)
    assert response.http_version == "HTTP/2"
    return response


# -- finding 1: health endpoints are no anonymous path to a provider ----------------------------

HEALTH_WITH_BODY = [
    pytest.param("POST", "/health", OPENAI_BODY, {}, 405, id="post-health"),
    pytest.param("PUT", "/health", OPENAI_BODY, {}, 405, id="put-health"),
    pytest.param("GET", "/health", OPENAI_BODY, {}, 400, id="get-health-with-a-body"),
    pytest.param("DELETE", "/health/ready", OPENAI_BODY, {}, 405, id="delete-health-ready"),
    pytest.param("POST", "/health?probe=1", OPENAI_BODY, {}, 405, id="post-health-with-query"),
    pytest.param("GET", "/health/ready?x=1", OPENAI_BODY, {}, 400, id="get-health-ready-with-query-and-body"),
    pytest.param("POST", "/health/ready", ANTHROPIC_BODY, ANTHROPIC_HEADERS, 405, id="anthropic-body-on-health-ready"),
    pytest.param("PATCH", "/health/live", OPENAI_BODY, {}, 405, id="patch-health-live"),
]


@pytest.mark.parametrize("method, path, body, headers, status", HEALTH_WITH_BODY)
@pytest.mark.parametrize("key", [None, KEY_ACME], ids=["anonymous", "with-a-valid-key"])
def test_health_with_a_body_never_reaches_a_provider(edge, mocks, method, path, body, headers, status, key):
    got, hdrs, answer = post(f"{edge.url}{path}", body, headers=headers, key=key, method=method)
    assert got == status, answer
    assert "choices" not in answer and "content" not in answer  # no completion
    if status == 405:
        assert hdrs["allow"] == "GET, HEAD"
    assert provider_calls(mocks) == 0


def test_health_requests_with_a_body_are_logged_as_health_requests(edge, mocks):
    sent = {}
    for param in HEALTH_WITH_BODY:
        method, path, body, headers, _ = param.values
        hdrs = post(f"{edge.url}{path}", body, headers=headers, key=None, method=method)[1]
        sent[hdrs["x-request-id"]] = path
    for request_id, entry in access_lines(edge, list(sent)).items():
        # Never the rewritten provider path, no provider, no upstream.
        assert entry["path"].split("?")[0] == sent[request_id].split("?")[0]
        assert entry.get("provider") is None and entry.get("upstream") is None


@pytest.mark.parametrize("method, path, body, headers, status", [
    pytest.param("POST", "/health", OPENAI_BODY, {}, 405, id="post-health"),
    pytest.param("GET", "/health", OPENAI_BODY, {}, 400, id="get-health-with-a-body"),
    pytest.param("POST", "/health/ready?x=1", ANTHROPIC_BODY, ANTHROPIC_HEADERS, 405, id="anthropic-body-on-health-ready"),
])
def test_health_with_a_body_over_http2_never_reaches_a_provider(edge, mocks, method, path, body, headers, status):
    response = h2_request(method, f"{edge.url}{path}", json.dumps(body).encode(),
                          {"content-type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert "choices" not in response.json() and "content" not in response.json()
    assert provider_calls(mocks) == 0


@pytest.mark.parametrize("path, expected", [("/health", "ready"), ("/health/ready", "ready"), ("/health/live", "live")])
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_health_probes_without_a_body_still_answer_without_a_key(edge, mocks, path, expected, http2):
    if http2:
        response = h2_request("GET", f"{edge.url}{path}", None, {})
        status, answer = response.status_code, response.json()
        assert h2_request("HEAD", f"{edge.url}{path}", None, {}).status_code == 200
    else:
        status, _, raw = http("GET", f"{edge.url}{path}")
        answer = json.loads(raw)
        assert http("HEAD", f"{edge.url}{path}")[0] == 200
    assert (status, answer) == (200, {"status": expected})
    assert provider_calls(mocks) == 0


@pytest.mark.parametrize("method, path, key, status, code", [
    pytest.param("POST", "/v1/chat/completion", KEY_ACME, 404, "unknown_url", id="unknown-path"),
    pytest.param("POST", "/v1/chat/completions/", KEY_ACME, 404, "unknown_url", id="trailing-slash"),
    pytest.param("PUT", "/v1/chat/completions", KEY_ACME, 405, "method_not_allowed", id="put-chat"),
    pytest.param("POST", "/v1/models", KEY_ACME, 405, "method_not_allowed", id="post-models"),
    pytest.param("POST", "/v1/chat/completions", None, 401, "missing_api_key", id="chat-without-a-key"),
])
def test_anything_outside_the_table_or_without_a_key_is_refused(edge, mocks, method, path, key, status, code):
    got, _, answer = post(f"{edge.url}{path}", OPENAI_BODY, key=key, method=method)
    assert (got, answer["error"]["code"]) == (status, code)
    assert provider_calls(mocks) == 0
