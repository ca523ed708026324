"""Refusal fallback: what a refusal is, the plan that retries it on the fallback group, the
attempt filter that reads the first answer, and the response phase that counts it."""

from __future__ import annotations

import json

import pytest
from edge_ext.config.loader import ConfigInvalid

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.envoy_config.render import render
from edge_ext.policy.attempt import AttemptState, AttemptStep
from edge_ext.policy.decisions import CONTINUE, Continue, Mode, ResponseMode
from edge_ext.policy.engine import Policy
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.refusal import REFUSAL_WATCH, is_refusal, refusal_watch
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.plan import all_plans
from edge_ext.routing.router import Router
from edge_ext.routing.shared_state import MemoryBreakerStore

CONFIG = """\
routing: {refusal_fallback: {m: safe}}
providers:
  - {name: alpha, kind: openai, base_url: "http://127.0.0.1:9001", models: [m], priority: 0}
  - {name: beta, kind: openai, base_url: "http://127.0.0.1:9002", models: [m], priority: 1}
  - {name: gamma, kind: anthropic, base_url: "http://127.0.0.1:9003", model_map: {safe: claude-safe}}
  - {name: delta, kind: openai, base_url: "http://127.0.0.1:9004", model_map: {safe: gpt-safe}}
"""
KEYS = {"alpha": "sk-a", "beta": "sk-b", "gamma": "sk-g", "delta": "sk-d"}
GRANTS = AttemptGrants(KEYS)


def openai_answer(*finishes: str) -> bytes:
    return json.dumps({"choices": [{"index": i, "finish_reason": f} for i, f in enumerate(finishes)]}).encode()


@pytest.mark.parametrize("api,status,body,refused", [
    ("openai", 200, openai_answer("content_filter"), True),
    ("openai", 200, openai_answer("content_filter", "content_filter"), True),
    ("openai", 200, openai_answer("content_filter", "stop"), False),  # one choice answered
    ("openai", 200, openai_answer("stop"), False),
    ("openai", 200, json.dumps({"choices": []}).encode(), False),
    ("openai", 400, json.dumps({"error": {"code": "content_filter", "message": "filtered"}}).encode(), True),  # Azure
    ("openai", 400, json.dumps({"error": {"code": "invalid_request_error"}}).encode(), False),
    ("openai", 500, json.dumps({"error": {"code": "content_filter"}}).encode(), False),
    ("anthropic", 200, json.dumps({"type": "message", "stop_reason": "refusal"}).encode(), True),
    ("anthropic", 200, json.dumps({"type": "message", "stop_reason": "end_turn"}).encode(), False),
    ("anthropic", 200, openai_answer("content_filter"), False),  # not in its own API
    ("openai", 200, b"not json", False),
    ("openai", 200, b"[1, 2]", False),
])
def test_what_a_refusal_is(api, status, body, refused):
    assert is_refusal(api, status, body) is refused


def router(config=CONFIG, clock=None):
    return Router(parse_config(config), KEYS, MemoryBreakerStore(clock=clock or FakeClock()))


def test_the_plan_is_the_first_choice_then_the_fallback_groups():
    r = router()
    chosen = r.pick("m")
    assert (chosen.plan, chosen.refusal_fallback, chosen.cluster) == (("alpha", "gamma"), "safe", "failover_alpha_gamma")
    assert r.pick("safe").refusal_fallback == ""  # the fallback group has none of its own
    r.force("gamma", BreakerState.OPEN)
    assert r.pick("m").plan == ("alpha", "delta")
    r.force("delta", BreakerState.OPEN)
    # No fallback provider can take it: the group's own plan, and no watch.
    chosen = r.pick("m")
    assert (chosen.plan, chosen.refusal_fallback) == (("alpha", "beta"), "")


def test_no_fallback_without_in_flight_retries():
    r = router(CONFIG.replace("routing: {", "routing: {max_attempts: 1, "))
    assert (r.pick("m").plan, r.pick("m").refusal_fallback) == (("alpha",), "")
    assert all_plans(parse_config(CONFIG.replace("routing: {", "routing: {max_attempts: 1, "))) == []


def test_every_refusal_plan_is_rendered():
    plans = set(all_plans(parse_config(CONFIG)))
    assert {("alpha", "gamma"), ("alpha", "delta"), ("beta", "gamma"), ("beta", "delta")} <= plans


def test_attempts_use_the_fallback_groups_model():
    r = router()
    assert r.attempt_model("m", "gamma") == ("safe", "claude-safe")
    assert r.attempt_model("m", "beta") == ("m", "m")
    assert r.attempt_model("safe", "alpha") is None


@pytest.mark.parametrize("config, error", [
    ("routing: {refusal_fallback: {m: nowhere}}", "no provider serves the model 'nowhere'"),
    ("routing: {refusal_fallback: {nowhere: m}}", "no provider serves the model 'nowhere'"),
    ("routing: {refusal_fallback: {m: m}}", "another model group"),
])
def test_the_fallback_must_be_another_served_group(config, error):
    with pytest.raises(ConfigInvalid, match=error):
        parse_config(config + '\nproviders: [{name: a, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}]')


def test_only_opted_in_requests_are_watched():
    assert refusal_watch("", False) == ()
    assert refusal_watch("safe", False) == ((REFUSAL_WATCH, "json"),)
    assert refusal_watch("safe", True) == ((REFUSAL_WATCH, "stream"),)


@pytest.mark.parametrize("model,watched", [("m", True), ("safe", False)])
def test_the_router_level_step_marks_an_opted_in_request_and_no_other(model, watched):
    policy = Policy(parse_config(CONFIG), FakeClock(), KEYS)
    st = policy.new_stream()
    # A client's own watch header never reaches the attempt filter.
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions", REFUSAL_WATCH: "json"}, False)
    decision = policy.on_request_body(st, json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]}).encode())
    headers = dict(decision.set_headers)
    if watched:
        assert headers[REFUSAL_WATCH] == "json" and headers["x-edge-cluster"] == "failover_alpha_gamma"
        assert REFUSAL_WATCH not in decision.remove_headers
    else:
        assert REFUSAL_WATCH not in headers and REFUSAL_WATCH in decision.remove_headers


# -- the attempt filter -----------------------------------------------------------------------
def first_attempt(watch="json"):
    step, st = AttemptStep(router(), GRANTS), AttemptState()
    route = {"provider": "alpha", "model": "m", "api": "openai", **dict(GRANTS.metadata("alpha", "m", ("alpha", "gamma")))}
    decision = step.on_headers(st, {"x-envoy-attempt-count": "1", REFUSAL_WATCH: watch}, "alpha", route)
    return step, st, decision


def test_the_first_attempt_is_read_not_reshaped():
    _, _, decision = first_attempt("json")
    assert decision == Continue(remove_headers=(REFUSAL_WATCH,),
                                mode=Mode(response_headers=True, response_body=ResponseMode.BUFFERED, request_body=False))
    _, _, decision = first_attempt("stream")
    assert decision.mode == Mode(response_headers=True, response_body=ResponseMode.NONE, request_body=False)


def test_a_first_attempt_without_a_watch_is_refused():
    _, _, decision = first_attempt("")
    assert decision.status == 502


@pytest.mark.parametrize("watch,status,content_type,body,retried", [
    ("json", 200, "application/json", openai_answer("content_filter"), True),
    ("json", 200, "application/json", openai_answer("stop"), False),
    ("json", 400, "application/json", json.dumps({"error": {"code": "content_filter"}}).encode(), True),
    ("stream", 400, "application/json", json.dumps({"error": {"code": "content_filter"}}).encode(), True),
])
def test_a_refused_first_answer_becomes_a_retriable_status(watch, status, content_type, body, retried):
    step, st, _ = first_attempt(watch)
    headers = step.on_response_headers(st, status, {":status": str(status), "content-type": content_type})
    if watch == "stream":
        assert headers.mode.response_body is ResponseMode.BUFFERED
    decision = step.on_response_body(st, body)
    if retried:
        assert decision == Continue(set_headers=((":status", "503"),),
                                    metadata=(("refused", "alpha"), ("refusal_fallback", "safe")))
    else:
        assert decision == CONTINUE


def test_a_stream_that_started_is_not_read():
    step, st, _ = first_attempt("stream")
    assert step.on_response_headers(st, 200, {":status": "200", "content-type": "text/event-stream"}) == CONTINUE


def test_the_fallback_attempt_is_shaped_for_its_own_model():
    step, st = AttemptStep(router(), GRANTS), AttemptState()
    route = {"provider": "alpha", "model": "m", "api": "openai", **dict(GRANTS.metadata("alpha", "m", ("alpha", "gamma")))}
    step.on_headers(st, {"x-envoy-attempt-count": "2", ":path": "/v1/chat/completions"}, "gamma", route)
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode()
    decision = step.on_body(st, body)
    assert json.loads(decision.body)["model"] == "claude-safe"
    assert dict(decision.set_headers)[":path"] == "/v1/messages"


def test_the_first_attempt_filter_runs_only_when_watched():
    cfg = parse_config(CONFIG)
    clusters = render(cfg)["static_resources"]["clusters"]
    cluster = next(c for c in clusters if c["name"] == "failover_alpha_gamma")
    ext = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    matcher = ext["http_filters"][0]["typed_config"]["xds_matcher"]["matcher_list"]["matchers"][0]
    first, unwatched = matcher["predicate"]["and_matcher"]["predicate"]
    assert first["single_predicate"]["input"]["typed_config"]["header_name"] == "x-envoy-attempt-count"
    watched = unwatched["not_matcher"]["or_matcher"]["predicate"]
    assert {p["single_predicate"]["value_match"]["exact"] for p in watched} == {"json", "stream"}
