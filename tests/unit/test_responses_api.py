"""The OpenAI Responses API: parsing, usage, streams (passthrough, accumulation, replay) and
whole requests through the sans-I/O policy."""

from __future__ import annotations

import json

import pytest

from edge_ext.apis.responses import RESPONSES, stateful
from edge_ext.apis.limits import RequestLimits
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.cost.pricing import load_pricing
from edge_ext.errors import BodyTooLarge, InvalidRequest
from edge_ext.mock.replies import ReplyKnobs, plan_text
from edge_ext.mock.responses_api import Response
from edge_ext.policy.accounting import Accounting, Meter
from edge_ext.policy.decisions import Continue, Respond, ResponseMode
from edge_ext.policy.engine import Policy
from edge_ext.policy.state import Phase
from edge_ext.sse import SSEParser
from edge_ext.translate.responses import ResponsesAccumulator, ResponsesStreamPassthrough, replay_responses
from edge_ext.usage import StreamUsage, Usage, from_responses
from tests.policy_world import World

# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    pytest.param({"model": "m", "input": "hi"}, id="string-input"),
    pytest.param({"model": "m", "input": [{"role": "user", "content": "hi"}]}, id="easy-message"),
    pytest.param({"model": "m", "input": [{"type": "message", "role": "user",
                                           "content": [{"type": "input_text", "text": "hi"}]}]}, id="typed-parts"),
    pytest.param({"model": "m", "previous_response_id": "resp_1"}, id="no-input-with-previous-response"),
    pytest.param({"model": "m", "input": "hi", "stream": True, "store": False, "max_output_tokens": 64}, id="options"),
])
def test_valid_requests_parse(body):
    request = RESPONSES.parse(json.dumps(body).encode())
    assert (request.api, request.model, request.stream) == ("responses", "m", body.get("stream", False))


@pytest.mark.parametrize("body, param", [
    pytest.param({"input": "hi"}, "model", id="missing-model"),
    pytest.param({"model": 3, "input": "hi"}, "model", id="model-not-a-string"),
    pytest.param({"model": "m"}, "input", id="missing-input"),
    pytest.param({"model": "m", "input": 42}, "input", id="input-a-number"),
    pytest.param({"model": "m", "input": {"role": "user"}}, "input", id="input-an-object"),
    pytest.param({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content", id="content-a-number"),
    pytest.param({"model": "m", "input": ["hi"]}, "input[0]", id="item-a-string"),
    pytest.param({"model": "m", "input": "hi", "stream": "yes"}, "stream", id="stream-a-string"),
    pytest.param({"model": "m", "input": "hi", "store": "no"}, "store", id="store-a-string"),
    pytest.param({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens", id="cap-zero"),
    pytest.param({"model": "m", "input": "hi", "max_output_tokens": True}, "max_output_tokens", id="cap-a-boolean"),
    pytest.param({"model": "m", "input": "hi", "temperature": 3}, "temperature", id="temperature-out-of-range"),
])
def test_bad_requests_are_refused_naming_the_field(body, param):
    with pytest.raises(InvalidRequest) as caught:
        RESPONSES.parse(json.dumps(body).encode())
    assert caught.value.status == 400 and caught.value.param == param


def test_the_chat_caps_bound_input_items():
    body = json.dumps({"model": "m", "input": [{"role": "user", "content": "x"}] * 5}).encode()
    with pytest.raises(BodyTooLarge):
        RESPONSES.parse(body, RequestLimits(max_messages=4, max_content_parts=10))


@pytest.mark.parametrize("body, expected", [
    pytest.param({"input": "hi"}, True, id="store-defaults-to-true"),
    pytest.param({"input": "hi", "store": True}, True, id="store-true"),
    pytest.param({"input": "hi", "store": False}, False, id="store-false"),
    pytest.param({"input": "hi", "store": False, "previous_response_id": "resp_1"}, True, id="previous-response"),
    pytest.param({"input": "hi", "store": False, "conversation": "conv_1"}, True, id="conversation"),
    pytest.param({"input": "hi", "store": False, "background": True}, True, id="background"),
])
def test_what_is_stateful(body, expected):
    assert stateful(body) is expected


# -- usage ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("usage, expected", [
    pytest.param({"input_tokens": 10, "output_tokens": 4, "total_tokens": 14}, Usage(10, 4), id="plain"),
    pytest.param({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 6}, "output_tokens": 4,
                  "output_tokens_details": {"reasoning_tokens": 3}}, Usage(4, 4, 6, 0, 3), id="cached-and-reasoning"),
    pytest.param({"input_tokens": 2, "input_tokens_details": {"cached_tokens": 9}, "output_tokens": 1,
                  "output_tokens_details": {"reasoning_tokens": 5}}, Usage(0, 1, 2, 0, 1), id="details-capped"),
    pytest.param({"input_tokens": None, "output_tokens": "7"}, Usage(), id="not-numbers-are-absent"),
])
def test_usage_of_a_response(usage, expected):
    assert from_responses({"object": "response", "usage": usage}) == expected


@pytest.mark.parametrize("body", [{"usage": None}, {"error": {"message": "x"}}, []], ids=["null", "error", "not-an-object"])
def test_no_usage(body):
    assert from_responses(body) is None


def _response(text: str = "Mock reply to: hi.", cap: int | None = None, **knobs) -> Response:
    body = {"model": "m", "input": "hi", "max_output_tokens": cap}
    return Response(body, plan_text("hi", max_tokens=cap, knobs=ReplyKnobs(**knobs)), 12, ReplyKnobs(**knobs))


def _events(raw: bytes):
    return SSEParser().feed(raw)


def test_stream_usage_comes_from_the_closing_event_only():
    usage = StreamUsage("responses")
    for event in _events(b"".join(_response(cached_tokens=5).frames())):
        usage.observe(event)
        if event.event != "response.completed":
            assert not usage.final
    assert usage.final and usage.usage.cached_input_tokens == 5 and usage.usage.input_tokens == 7


# -- streams --------------------------------------------------------------------------------------

def test_a_completed_stream_is_folded_into_the_json_answer():
    response = _response()
    acc = ResponsesAccumulator()
    for event in _events(b"".join(response.frames())):
        acc.feed(event)
    assert acc.complete and acc.result()["output"][0]["content"][0]["text"] == response.plan.text


@pytest.mark.parametrize("cut", [
    pytest.param(lambda frames: frames[:-1], id="cut-before-completed"),
    pytest.param(lambda frames: frames[:5] + [b'event: error\ndata: {"type":"error","code":"x"}\n\n'], id="error"),
])
def test_an_unfinished_stream_is_not_an_answer(cut):
    acc = ResponsesAccumulator()
    for event in _events(b"".join(cut(_response().frames()))):
        acc.feed(event)
    assert not acc.complete and acc.result() is None


def test_an_incomplete_answer_is_not_stored():
    response = _response(cap=2)
    acc = ResponsesAccumulator()
    for event in _events(b"".join(response.frames())):
        acc.feed(event)
    assert response.json()["status"] == "incomplete" and not acc.complete


def test_replay_gives_back_the_stored_answer_event_for_event():
    stored = _response().json()
    replayed = _events(replay_responses(stored, chunk_words=2))
    names = [e.event for e in replayed]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    payloads = [json.loads(e.data) for e in replayed]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta") == stored["output"][0]["content"][0]["text"]
    assert payloads[-1]["response"] == stored and payloads[0]["response"]["usage"] is None
    acc = ResponsesAccumulator()
    for event in replayed:
        acc.feed(event)
    assert acc.result() == stored


def test_replay_of_a_function_call_streams_its_arguments():
    stored = {"id": "resp_1", "object": "response", "status": "completed", "output": [
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": '{"q": "' + "x" * 70 + '"}',
         "status": "completed"}], "usage": {"input_tokens": 1, "output_tokens": 1}}
    payloads = [json.loads(e.data) for e in _events(replay_responses(stored))]
    deltas = [p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 1 and "".join(deltas) == stored["output"][0]["arguments"]
    assert payloads[2]["item"]["arguments"] == "" and payloads[-2]["item"] == stored["output"][0]


def test_the_passthrough_ends_a_cut_stream_with_an_error_event():
    frames = _response().frames()
    passthrough = ResponsesStreamPassthrough()
    out = b"".join(passthrough.feed(e) for e in _events(b"".join(frames[:6])))
    assert out == b"".join(frames[:6])
    [error] = _events(passthrough.finish(False))
    assert error.event == "error" and json.loads(error.data)["code"] == "stream_truncated"
    done = ResponsesStreamPassthrough()
    for event in _events(b"".join(frames)):
        done.feed(event)
    assert done.finish(True) == b""


def test_a_cut_stream_is_estimated_from_the_text_delivered():
    meter = Meter("responses", stream=True)
    meter.feed(b"".join(_response(output_words=40).frames()[:30]))
    assert meter.usage() is None
    estimate = meter.estimate({"model": "m", "input": "hi " * 40})
    assert estimate.output_tokens >= 20 and estimate.input_tokens > 0


# -- whole requests -------------------------------------------------------------------------------

CONFIG = """\
routing: {strategy: failover, max_attempts: 3}
cache: {policy: always}
accounting: {fast_path: false}
providers:
  - {name: alpha, kind: openai, base_url: "http://127.0.0.1:9001", models: [m], priority: 0}
  - {name: beta, kind: anthropic, base_url: "http://127.0.0.1:9002", model_map: {m: claude-x, c: claude-x}, priority: 1}
  - {name: gamma, kind: azure_openai, base_url: "http://127.0.0.1:9003", models: [m, az], api_version: "2024-10-21",
     priority: 2}
"""
KEYS = {"alpha": "sk-alpha", "beta": "sk-beta", "gamma": "sk-gamma"}
HEADERS = {":method": "POST", ":path": "/v1/responses", "content-type": "application/json"}


def make_policy(**services) -> Policy:
    return Policy(parse_config(CONFIG), FakeClock(), KEYS, wall=lambda: 1_700_000_000.0,
                  accounting=Accounting(load_pricing()), **services)


def send(policy: Policy, world: World, **body):
    st = policy.new_stream()
    assert isinstance(world.run(policy, st, policy.on_request_headers(st, HEADERS, False)), Continue)
    return st, world.run(policy, st, policy.on_request_body(st, json.dumps({"model": "m", "input": "hi", **body}).encode()))


def answer(policy: Policy, world: World, st, body: bytes) -> Continue:
    headers = policy.on_response_headers(st, 200, {}, "via_upstream", served=st.provider, attempts=1)
    assert headers.mode.response_body is (ResponseMode.STREAMED if st.stream else ResponseMode.BUFFERED)
    out = world.run(policy, st, policy.on_response_body(st, body, True))
    world.end(policy, st)
    return out


def test_a_request_goes_to_the_responses_path_of_providers_that_speak_it_only():
    policy, world = make_policy(), World()
    st, routed = send(policy, world, store=False)
    headers = dict(routed.set_headers)
    assert headers[":path"] == "/v1/responses" and routed.body is None  # the client's bytes, untouched
    assert st.routed.plan == ("alpha", "gamma")  # the Anthropic provider is no fallback
    assert (st.upstream_api, st.same_api) == ("responses", True)


def test_azure_gets_its_v1_responses_path_and_the_deployment_in_the_body():
    policy, world = make_policy(), World()
    st = policy.new_stream()
    world.run(policy, st, policy.on_request_headers(st, HEADERS, False))
    routed = world.run(policy, st, policy.on_request_body(st, json.dumps({"model": "az", "input": "hi"}).encode()))
    assert dict(routed.set_headers)[":path"] == "/openai/v1/responses" and ("api-key", "sk-gamma") in routed.set_headers


def test_a_model_only_an_anthropic_provider_serves_is_refused_400():
    policy, world = make_policy(), World()
    st = policy.new_stream()
    world.run(policy, st, policy.on_request_headers(st, HEADERS, False))
    refused = world.run(policy, st, policy.on_request_body(st, json.dumps({"model": "c", "input": "hi"}).encode()))
    assert isinstance(refused, Respond) and refused.status == 400
    error = json.loads(refused.body)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "model" and st.routed is None


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_store_false_answer_is_accounted_stored_and_replayed_in_its_shape(stream):
    policy, world = make_policy(cache=True), World()
    response = _response(cached_tokens=4, reasoning_tokens=2)
    st, _ = send(policy, world, store=False, stream=stream)
    body = b"".join(response.frames()) if stream else json.dumps(response.json()).encode()
    out = answer(policy, world, st, body)
    assert ("tokens_out", str(response.plan.completion_tokens + 2)) in out.metadata
    assert st.charge.usage.cached_input_tokens == 4 and not st.charge.estimated and len(world.cache) == 1

    again, hit = send(policy, world, store=False, stream=not stream)
    assert isinstance(hit, Respond) and again.outcome == "cache_hit"
    if stream:  # stored from a stream, asked for as JSON
        assert json.loads(hit.body) == response.json()
    else:
        acc = ResponsesAccumulator()
        for event in _events(hit.body):
            acc.feed(event)
        assert acc.result() == response.json() and ("content-type", "text/event-stream") in hit.headers


@pytest.mark.parametrize("state", [{}, {"store": True}, {"store": False, "previous_response_id": "resp_1"}],
                         ids=["store-default", "store-true", "previous-response"])
def test_a_stateful_request_is_never_cached(state):
    policy, world = make_policy(cache=True), World()
    st, routed = send(policy, world, **state)
    assert isinstance(routed, Continue) and st.cache_status == "bypass" and st.flight is None
    answer(policy, world, st, json.dumps(_response().json()).encode())
    assert world.cache == {} and world.asked == []


def test_a_stream_cut_before_completed_is_charged_as_estimated():
    policy, world = make_policy(), World()
    st, _ = send(policy, world, stream=True)
    policy.on_response_headers(st, 200, {}, "via_upstream", served="alpha", attempts=1)
    out = world.run(policy, st, policy.on_response_body(st, b"".join(_response().frames()[:8]), True))
    assert b"stream_truncated" in out.body
    world.end(policy, st)
    assert st.charge.estimated and st.charge.usage.output_tokens > 0
    assert st.phase is Phase.ENDED


def test_a_failover_attempt_sends_the_responses_body_to_the_next_provider_that_speaks_it():
    from edge_ext.policy.attempt import AttemptState, AttemptStep

    policy, world = make_policy(), World()
    st, routed = send(policy, world, store=False)
    # "api" was set at the request headers; Envoy forwards it with the routed metadata.
    route = {**dict(routed.metadata), "api": "responses"}
    step, attempt = AttemptStep(policy.router, policy.grants), AttemptState()
    left = {":path": "/v1/responses", "authorization": "Bearer sk-alpha"}
    assert isinstance(step.on_headers(attempt, left, "gamma", route), Continue)
    decision = step.on_body(attempt, json.dumps({"model": "m", "input": "hi", "store": False}).encode())
    headers = dict(decision.set_headers)
    assert headers[":path"] == "/openai/v1/responses" and headers["api-key"] == "sk-gamma"
    # gamma serves m under the same name: the client's bytes go on untouched.
    assert "authorization" in decision.remove_headers and decision.body is None


# -- the 2-message path ---------------------------------------------------------------------------

def test_envoy_extracts_responses_usage_and_the_outcome_reads_it():
    from edge_ext.envoy_config.outcomes import usage_filter
    from edge_ext.policy.outcome import usage_of

    rules = usage_filter()["typed_config"]["response_rules"]["rules"]
    keys = [r["on_present"]["key"] for r in rules]
    assert len(keys) == len(set(keys))  # Anthropic's input_tokens and the Responses API's share a rule
    extracted = {"input_tokens": 10.0, "output_tokens": 4.0, "input_cached_tokens": 6.0, "output_reasoning_tokens": 3.0}
    assert usage_of("responses", extracted) == Usage(4, 4, 6, 0, 3)


def test_a_stateful_json_request_takes_the_2_message_path_a_stream_does_not():
    config = CONFIG.replace("accounting: {fast_path: false}\n", "")
    policy = Policy(parse_config(config), FakeClock(), KEYS, wall=lambda: 1_700_000_000.0,
                    accounting=Accounting(load_pricing()))
    world = World()
    st, routed = send(policy, world)
    assert routed.last and ("api", "responses") in routed.metadata
    streamed, routed = send(policy, world, stream=True)
    assert not routed.last


# -- prompt PII -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["block", "redact"])
def test_the_prompt_pii_policy_covers_responses_input(mode):
    policy = Policy(parse_config(CONFIG + f"auth: {{pii: {mode}}}\n"), FakeClock(), KEYS, wall=lambda: 1_700_000_000.0)
    world = World()
    image = "data:image/png;base64," + "QUJD" * 100
    st, decision = send(policy, world, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "my SSN is 123-45-6789"}, {"type": "input_image", "image_url": image}]}])
    if mode == "block":
        assert isinstance(decision, Respond) and json.loads(decision.body)["error"]["code"] == "pii_detected"
        return
    sent = json.loads(decision.body)
    assert "123-45-6789" not in sent["input"][0]["content"][0]["text"]
    assert sent["input"][0]["content"][1]["image_url"] == image  # binary, not text: left alone
