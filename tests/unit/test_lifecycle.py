"""Whole request lifecycles through the sans-I/O policy, with no event loop: every need is
answered by the working fakes below, every effect applied to them, every phase checked against
the stream's lifecycle (edge_ext.policy.state)."""

from __future__ import annotations

import asyncio
import json

import pytest

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.errors import BudgetExceeded
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.decisions import Continue, Respond, ResponseMode
from edge_ext.policy.engine import Policy
from edge_ext.policy.route_step import CLUSTER_HEADER
from edge_ext.policy.needs import (AwaitEntry, Claim, FetchKey, JoinFlight, LookUp, ScanPrompt)
from edge_ext.policy.state import ARRIVES_IN, TRANSITIONS, IllegalTransition, Phase, StreamState
from edge_ext.cost.pricing import load_pricing
from tests.policy_world import WALL, World

CONFIG = """\
routing: {strategy: failover, max_attempts: 2}
cache: {policy: always}
accounting: {fast_path: false}
providers:
  - {name: alpha, kind: openai, base_url: "http://127.0.0.1:9001", models: [m], priority: 0}
  - {name: beta, kind: anthropic, base_url: "http://127.0.0.1:9002", model_map: {m: claude-x}, priority: 1}
"""
KEYS = {"alpha": "sk-alpha", "beta": "sk-beta"}
@pytest.fixture(autouse=True)
def no_event_loop():
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def make_policy(**services) -> Policy:
    return Policy(parse_config(CONFIG), FakeClock(), KEYS, wall=lambda: WALL, accounting=Accounting(load_pricing()),
                  **services)


def chat(**extra) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}).encode()


HEADERS = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def request(policy: Policy, world: World, body: bytes) -> tuple[StreamState, Continue | Respond]:
    st = policy.new_stream()
    assert isinstance(world.run(policy, st, policy.on_request_headers(st, HEADERS, False)), Continue)
    assert st.phase is Phase.BODY
    return st, world.run(policy, st, policy.on_request_body(st, body))


def test_a_miss_is_routed_and_its_answer_stored_then_the_same_request_is_a_hit():
    policy, world = make_policy(cache=True), World()
    st, routed = request(policy, world, chat())
    assert world.asked == [LookUp, JoinFlight, Claim]
    assert isinstance(routed, Continue) and dict(routed.set_headers)[CLUSTER_HEADER] == "failover_alpha_beta"
    assert st.phase is Phase.ROUTED and st.flight.leading and st.flight.claimed and st.cache_status == "miss"
    headers = policy.on_response_headers(st, 200, {}, "via_upstream", served="alpha", attempts=1)
    assert headers.mode.response_body is ResponseMode.BUFFERED  # read to store it
    assert st.phase is Phase.ANSWERING and not st.breaker_pending
    world.run(policy, st, policy.on_response_body(st, json.dumps(ANSWER).encode(), True))
    assert list(world.cache) == [st.flight.key] and not world.flights and not world.claims
    world.end(policy, st)
    assert st.phase is Phase.ENDED

    again, hit = request(policy, world, chat())
    assert isinstance(hit, Respond) and ("x-edge-cache", "hit-l1") in hit.headers
    assert json.loads(hit.body) == ANSWER and again.outcome == "cache_hit" and again.phase is Phase.DONE
    assert again.routed is None  # the provider was never asked


def test_a_follower_gets_the_leaders_answer_or_asks_itself():
    policy, world = make_policy(cache=True), World()
    leader, _ = request(policy, world, chat())
    follower = policy.new_stream()
    world.run(policy, follower, policy.on_request_headers(follower, HEADERS, False))
    step = policy.on_request_body(follower, chat())
    while not isinstance(step, AwaitEntry):
        step = policy.resume(follower, world.perform(step))
    assert step.extend_s > 1 and not step.elsewhere  # Envoy's deadline is extended first
    # The leader's answer was not stored (its stream ended first): the follower asks the provider.
    world.end(policy, leader)
    assert not world.flights
    decision = world.run(policy, follower, policy.resume(follower, world.perform(step)))
    assert isinstance(decision, Continue) and follower.phase is Phase.ROUTED
    assert follower.flight.recorder is not None and not follower.flight.leading


def test_a_budget_refusal_is_answered_before_routing_and_settles_nothing():
    policy, world = make_policy(budgets=True), World(refuse=BudgetExceeded("over the daily budget"))
    st, decision = request(policy, world, chat())
    assert isinstance(decision, Respond) and decision.status == 429
    assert json.loads(decision.body)["error"]["code"] == "budget_exceeded"
    assert st.phase is Phase.DONE and st.routed is None and st.admission is None
    world.end(policy, st)
    assert world.settled == []


def test_an_admitted_request_settles_its_reservation_to_the_answers_charge():
    policy, world = make_policy(budgets=True), World()
    st, decision = request(policy, world, chat())
    assert isinstance(decision, Continue) and st.admission is not None
    policy.on_response_headers(st, 200, {}, "via_upstream", served="alpha", attempts=1)
    body = world.run(policy, st, policy.on_response_body(st, json.dumps(ANSWER).encode(), True))
    assert ("tokens_out", "2") in body.metadata
    [settle] = world.settled  # at the answer's end, not at the stream's
    assert settle.charge.usage.output_tokens == 2 and not settle.charge.estimated
    world.end(policy, st)
    assert len(world.settled) == 1


def test_a_request_failed_over_is_read_in_the_api_of_the_provider_that_answered():
    policy, world = make_policy(), World()
    st, _ = request(policy, world, chat())
    decision = policy.on_response_headers(st, 200, {}, "via_upstream", served="beta", attempts=2)
    assert ("x-edge-provider", "beta") in decision.set_headers
    assert (st.provider, st.retried, st.upstream_api, st.same_api) == ("beta", ("alpha",), "anthropic", False)
    anthropic = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
                 "content": [{"type": "text", "text": "hello"}], "usage": {"input_tokens": 5, "output_tokens": 2}}
    body = world.run(policy, st, policy.on_response_body(st, json.dumps(anthropic).encode(), True))
    answer = json.loads(body.body)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"] == "hello"
    assert st.charge.usage.output_tokens == 2


def test_a_stream_asks_for_usage_on_the_clients_behalf_and_strips_it_again():
    policy, world = make_policy(), World()
    st, routed = request(policy, world, chat(stream=True))
    assert json.loads(routed.body)["stream_options"] == {"include_usage": True}
    headers = policy.on_response_headers(st, 200, {}, "via_upstream", served="alpha", attempts=1)
    assert headers.mode.response_body is ResponseMode.STREAMED and "content-length" in headers.remove_headers
    words = b'data: {"choices":[{"index":0,"delta":{"content":"hello"}}],"usage":null}\n\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    first = policy.on_response_body(st, words, False)
    assert b"hello" in first.body and b"usage" not in first.body
    last = policy.on_response_body(st, usage + b"data: [DONE]\n\n", True)
    assert b"prompt_tokens" not in last.body and last.body.endswith(b"data: [DONE]\n\n")
    assert st.charge.usage.output_tokens == 2 and not st.charge.estimated
    world.end(policy, st)
    assert st.phase is Phase.ENDED


def test_a_large_prompt_is_scanned_apart_after_the_deadline_is_extended():
    policy = Policy(parse_config(CONFIG + "auth: {enabled: false, pii: redact}\n"), FakeClock(), KEYS)
    st = policy.new_stream()
    policy.on_request_headers(st, HEADERS, False)
    need = policy.on_request_body(st, chat(messages=[{"role": "user", "content": "plain words " * 3000}]))
    assert isinstance(need, ScanPrompt) and need.extend_s > 5 and st.waiting is need
    assert isinstance(policy.resume(st, need.request), Continue) and st.phase is Phase.ROUTED


def test_a_key_the_key_store_does_not_know_is_refused():
    config = parse_config(CONFIG + "auth: {redis_keys: true, keys: []}\nredis: {url: 'redis://127.0.0.1:1'}\n")
    policy = Policy(config, FakeClock(), KEYS, key_store=True)
    st = policy.new_stream()
    need = policy.on_request_headers(st, {**HEADERS, "authorization": "Bearer sk-unknown"}, False)
    assert isinstance(need, FetchKey)
    decision = policy.resume(st, None)
    assert isinstance(decision, Respond) and decision.status == 401 and st.phase is Phase.DONE


def test_the_lifecycle_refuses_a_move_it_does_not_have():
    st = StreamState(started=0.0)
    for phase in (Phase.ROUTED, Phase.ANSWERING, Phase.HANDED_OVER):
        assert phase not in TRANSITIONS[Phase.HEADERS]
        with pytest.raises(IllegalTransition):
            st.enter(phase)
    assert all(Phase.ENDED in TRANSITIONS[phase] for phase in Phase if phase is not Phase.ENDED)


def test_envoys_own_reply_before_the_body_ends_the_requests_life():
    """Envoy answered (a body over its buffer, say) before the processor saw the body: nothing
    was routed, nothing is read, and no request message may follow (state.ARRIVES_IN)."""
    policy, world = make_policy(), World()
    st = policy.new_stream()
    world.run(policy, st, policy.on_request_headers(st, HEADERS, False))
    assert policy.on_response_headers(st, 413, {}, "request_payload_too_large") == Continue()
    assert st.phase is Phase.DONE and st.routed is None
    assert st.phase not in ARRIVES_IN["request_body"] and st.phase not in ARRIVES_IN["request_headers"]
    world.end(policy, st)
    assert st.phase is Phase.ENDED
