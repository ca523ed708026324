"""Fuzzing the processor: random bodies and header sets never crash it, hang it or get an
ill-formed reply. 10,000 bodies through the policy and the proto conversion, 1,000 through the
in-process gRPC worker (tests/grpc), a few hundred through real Envoy (tests/e2e). Type-confused
requests of every translation direction are client faults: routed, or a 4xx, never a 5xx."""

import json

import pytest
from hypothesis import HealthCheck, given, settings

from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.tiered import TieredCache
from edge_ext.driver import Driver
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.extproc.convert import to_response
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy
from tests.fuzzing import DIRECTIONS, FUZZ_FIXED, bodies, confused_requests, header_sets, methods, paths

CONFIG = parse_config("""
processor: {max_body_bytes: 65536}
cache: {enabled: false}
providers:
  - {name: oa, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}
  - {name: an, kind: anthropic, base_url: "http://127.0.0.1:2", models: [claude-x]}
""")
# Every reader of a request body on: PII redaction, cache keys (every request is cacheable).
CONFUSED_CONFIG = parse_config("""
auth: {pii: redact}
cache: {policy: always}
providers:
  - {name: oa, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}
  - {name: an, kind: anthropic, base_url: "http://127.0.0.1:2", models: [claude-x]}
""")
CLIENT_HEADERS = {"openai": {}, "anthropic": {"anthropic-version": "2023-06-01"}, "responses": {}}


def check_reply(phase: str, decision) -> None:
    response = to_response(phase, decision)
    assert response.ByteSize() >= 0
    if isinstance(decision, Respond):
        assert 200 <= decision.status <= 599
        body = json.loads(decision.body)
        assert isinstance(body, dict) and ("error" in body or "data" in body)
        assert ("content-type", "application/json") in decision.headers
    else:
        assert isinstance(decision, Continue)


@settings(derandomize=FUZZ_FIXED, max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=methods, path=paths, headers=header_sets, body=bodies)
def test_random_requests_always_get_a_well_formed_reply(method, path, headers, body):
    policy = Policy(CONFIG, FakeClock(), {}, wall=lambda: 1.7e9)
    st_ = policy.new_stream()
    decision = policy.on_request_headers(st_, {":method": method, ":path": path, **headers}, end_of_stream=False)
    check_reply("request_headers", decision)
    if isinstance(decision, Continue):
        decision = policy.on_request_body(st_, body)
        check_reply("request_body", decision)
        if isinstance(decision, Continue) and decision.set_headers:
            assert dict(decision.set_headers)["x-edge-cluster"].startswith("provider_")
    policy.on_stream_end(st_)


async def decide(api: str, path: str, body: bytes):
    clock = FakeClock()
    cache = TieredCache(MemoryCache(100, 1_000_000, clock), None, 60, 60)
    policy = Policy(CONFUSED_CONFIG, clock, {}, wall=lambda: 1.7e9, cache=True)
    driver = Driver(policy, CONFUSED_CONFIG, cache=cache)
    st_ = policy.new_stream()
    headers = {":method": "POST", ":path": path, "content-type": "application/json", **CLIENT_HEADERS[api]}
    decision = policy.on_request_headers(st_, headers, end_of_stream=False)
    assert isinstance(decision, Continue), decision
    decision = await driver.run(st_, policy.on_request_body(st_, body))
    check_reply("request_body", decision)
    driver.end(st_)
    return decision


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
async def test_the_valid_request_of_each_direction_is_routed(direction):
    api, path, body = DIRECTIONS[direction]
    decision = await decide(api, path, json.dumps(body).encode())
    assert isinstance(decision, Continue) and dict(decision.set_headers)["x-edge-cluster"].startswith("provider_")


@settings(derandomize=FUZZ_FIXED, max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=confused_requests)
async def test_type_confused_fields_are_routed_or_a_client_error(request):
    decision = await decide(*request)
    if isinstance(decision, Respond):
        assert 400 <= decision.status < 500, decision.body
    elif decision.body is not None:
        assert isinstance(json.loads(decision.body), dict)  # a translated body is JSON
