"""A few hundred random requests through real Envoy: always a well-formed reply, the worker healthy;
type-confused requests of every translation direction: never a 5xx."""

import json

from hypothesis import HealthCheck, given, settings

from tests.support import edge_config, http, start_edge, start_mock, stop
from tests.fuzzing import FUZZ_FIXED, bodies, confused_requests, header_sets, paths

import pytest


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    mock = start_mock("fuzz-mock")
    tmp = tmp_path_factory.mktemp("fuzz")
    running = start_edge(tmp, edge_config(tmp, [
        {"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini"]},
        {"name": "an", "kind": "anthropic", "base_url": mock.url, "models": ["claude-x"]}], processor={"workers": 1}))
    yield running
    assert stop(running.proc) == 0, running.log()
    stop(mock.proc)


SAFE_HEADER = {k for k in ("authorization", "x-api-key", "cache-control", "anthropic-version", "x-edge-cache-ttl")}


@settings(derandomize=FUZZ_FIXED, max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=paths, headers=header_sets, body=bodies)
def test_random_requests_through_envoy(edge, path, headers, body):
    # Only headers a client could legally send as text (Envoy rejects control characters itself).
    sent = {k: v for k, v in headers.items() if k in SAFE_HEADER and v.isprintable() and v.isascii() and v.strip() == v}
    status, hdrs, payload = http("POST", f"{edge.url}{path}", body, {"content-type": "application/json", **sent}, timeout=15)
    assert 200 <= status <= 599
    if status >= 400:
        assert hdrs.get("content-type") == "application/json", (status, payload[:200])
        assert json.loads(payload)


@settings(derandomize=FUZZ_FIXED, max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=confused_requests)
def test_type_confused_fields_are_never_a_5xx(edge, request):
    api, path, body = request
    headers = {"content-type": "application/json", **({"anthropic-version": "2023-06-01"} if api == "anthropic" else {})}
    status, hdrs, payload = http("POST", f"{edge.url}{path}", body, headers, timeout=15)
    # Routed (the mock answers) or refused as the client's fault; never the edge's failure.
    assert status < 500, (status, payload[:300])
    if status >= 400:
        assert hdrs.get("content-type") == "application/json", (status, payload[:200])
        error = json.loads(payload)
        assert "internal error" not in json.dumps(error)


def test_worker_healthy_after_fuzzing(edge):
    assert http("GET", f"{edge.url}/health/ready")[0] == 200
