"""Fuzzing the processor: random bodies and header sets never crash it, hang it or get an
ill-formed reply. 10,000 bodies through the policy and the proto conversion, 1,000 through the
in-process gRPC worker (tests/grpc), a few hundred through real Envoy (tests/e2e)."""

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.extproc.convert import to_response
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy

# A fixed seed by default so CI is repeatable; EDGE_EXT_FUZZ_RANDOM=1 explores new inputs.
FUZZ_FIXED = os.environ.get("EDGE_EXT_FUZZ_RANDOM") != "1"

CONFIG = parse_config("""
processor: {max_body_bytes: 65536}
cache: {enabled: false}
providers:
  - {name: oa, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}
  - {name: an, kind: anthropic, base_url: "http://127.0.0.1:2", models: [claude-x]}
""")

json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                           max_leaves=30)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", 1]),
                                 "content": json_values})
plausible = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "claude-x", "nope", 3, None]), "messages": st.lists(message, max_size=4) | json_values},
    optional={"temperature": json_values, "top_p": json_values, "max_tokens": json_values, "n": json_values,
              "stream": json_values, "tools": json_values, "stop": json_values, "extra": json_values})


def deep(depth: int) -> bytes:
    return b'{"model":"gpt-4o-mini","messages":' + b"[" * depth + b"]" * depth + b"}"


bodies = (
    plausible.map(lambda v: json.dumps(v).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | plausible.map(lambda v: json.dumps(v).encode()).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    | st.integers(1, 5000).map(deep)
    | st.text(max_size=20).map(lambda t: json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": t * 1000}]}).encode())
)
header_sets = st.dictionaries(
    st.sampled_from(["authorization", "x-api-key", "content-length", "cache-control", "anthropic-version",
                     "x-edge-cache-ttl", "x-edge-cache-enable", "content-type"]),
    st.text(max_size=30), max_size=5)
paths = st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/models", "/health", "/x", "/v1/chat/completions?a=b"])
methods = st.sampled_from(["POST", "GET", "PUT"])


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
async def test_random_requests_always_get_a_well_formed_reply(method, path, headers, body):
    policy = Policy(CONFIG, FakeClock(), {}, wall=lambda: 1.7e9)
    st_ = policy.new_stream()
    decision = policy.on_request_headers(st_, {":method": method, ":path": path, **headers}, end_of_stream=False)
    check_reply("request_headers", decision)
    if isinstance(decision, Continue):
        decision = await policy.on_request_body(st_, body)
        check_reply("request_body", decision)
        if isinstance(decision, Continue) and decision.set_headers:
            assert dict(decision.set_headers)["x-edge-cluster"].startswith("provider_")
    policy.on_stream_end(st_)
