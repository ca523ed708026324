"""The one validation pass before routing: duplicate keys, lone surrogates, the type of every field
the edge reads, output limits; and a breaker's probe slot given back by any refusal after a pick."""

import json

import pytest

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.openai import OPENAI
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.errors import InvalidJSON, InvalidRequest
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy
from edge_ext.cost.pricing import load_pricing
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.router import Router
from edge_ext.routing.shared_state import MemoryBreakerStore

HI = [{"role": "user", "content": "hi"}]


def openai(**fields) -> bytes:
    return json.dumps({"model": "m", "messages": HI, **fields}).encode()


def anthropic(**fields) -> bytes:
    return json.dumps({"model": "m", "max_tokens": 8, "messages": HI, **fields}).encode()


@pytest.mark.parametrize("raw, key", [
    pytest.param(b'{"model":"a","messages":[],"model":"b"}', "model", id="top-level"),
    pytest.param(b'{"model":"a","messages":[{"role":"user","content":"x","content":"y"}]}', "content", id="in-a-message"),
    pytest.param(b'{"model":"a","messages":[{"role":"user","content":"x"}],"extra":{"k":1,"k":1}}', "k",
                 id="in-an-unknown-field-even-with-equal-values"),
])
def test_duplicate_keys_anywhere_are_refused_naming_the_key(raw, key):
    with pytest.raises(InvalidJSON) as info:
        OPENAI.parse(raw)
    assert info.value.param == key and f"duplicate key '{key}'" in info.value.message


def test_same_key_in_different_objects_is_fine():
    raw = b'{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}'
    assert OPENAI.parse(raw).body["messages"][1]["content"] == "b"


@pytest.mark.parametrize("api, raw, where", [
    pytest.param(OPENAI, b'{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}', "messages[0].content",
                 id="openai-high"),
    pytest.param(OPENAI, b'{"model":"m","messages":[{"role":"user","content":"x"}],"user":"\\uDC00x"}', "user",
                 id="openai-low-upper-case-hex"),
    pytest.param(OPENAI, b'{"model":"m","messages":[{"role":"user","content":"x"}],"extra":["\\ude00\\ud83d"]}',
                 "extra[0]", id="openai-reversed-pair-in-an-unknown-field"),
    pytest.param(ANTHROPIC, b'{"model":"m","max_tokens":8,"messages":[{"role":"user","content":[{"type":"text",'
                 b'"text":"a\\ud83d"}]}]}', "messages.0.content.0.text", id="anthropic-nested"),
    pytest.param(OPENAI, b'{"model":"m","messages":[{"role":"user","content":"x"}],"meta":{"\\ud800":1}}', "meta",
                 id="in-a-key"),
])
def test_lone_surrogates_are_refused_naming_the_field(api, raw, where):
    with pytest.raises(InvalidJSON) as info:
        api.parse(raw)
    assert info.value.param == where


@pytest.mark.parametrize("raw, text", [
    pytest.param(b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}', "\U0001F600", id="pair"),
    pytest.param(b'{"model":"m","messages":[{"role":"user","content":"\\\\ud800"}]}', "\\ud800", id="escaped-backslash"),
])
def test_surrogate_pairs_and_escaped_backslashes_are_text(raw, text):
    assert OPENAI.parse(raw).body["messages"][0]["content"] == text


OPENAI_CONFUSED = [
    pytest.param({"stop": 1}, "stop", id="stop-number"),
    pytest.param({"stop": ["a", 2]}, "stop[1]", id="stop-item"),
    pytest.param({"tools": 1}, "tools", id="tools-number"),
    pytest.param({"tools": [{"type": "function", "function": "f"}]}, "tools[0].function", id="tool-function-string"),
    pytest.param({"tools": [{"type": 3}]}, "tools[0].type", id="tool-type"),
    pytest.param({"tool_choice": 1}, "tool_choice", id="tool-choice"),
    pytest.param({"parallel_tool_calls": "no"}, "parallel_tool_calls", id="parallel-tool-calls"),
    pytest.param({"user": 7}, "user", id="user"),
    pytest.param({"stream_options": []}, "stream_options", id="stream-options"),
    pytest.param({"messages": [{"role": "user", "content": 1}]}, "messages[0].content", id="content-number"),
    pytest.param({"messages": [{"role": "user", "content": [1]}]}, "messages[0].content[0]", id="part-number"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]}, "messages[0].content[0].text",
                 id="text-part"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
                 "messages[0].content[0].image_url", id="image-url-string"),
    pytest.param({"messages": [{"role": "user", "content": "x", "name": ["n"]}]}, "messages[0].name", id="name"),
    pytest.param({"messages": [{"role": [], "content": "x"}]}, "messages[0].role", id="role-array"),
    pytest.param({"messages": [{"role": "assistant", "tool_calls": {"id": 1}}]}, "messages[0].tool_calls", id="tool-calls"),
    pytest.param({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 1}}]}]},
                 "messages[0].tool_calls[0].function.arguments", id="arguments"),
    pytest.param({"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]}, "messages[0].tool_call_id",
                 id="tool-call-id"),
]


@pytest.mark.parametrize("change, field", OPENAI_CONFUSED)
def test_openai_type_confused_fields_name_the_field(change, field):
    with pytest.raises(InvalidRequest) as info:
        OPENAI.parse(openai(**change))
    assert info.value.param == field and info.value.message.startswith(f"'{field}' must be")


ANTHROPIC_CONFUSED = [
    pytest.param({"system": 1}, "system", id="system-number"),
    pytest.param({"system": [{"type": "text", "text": 1}]}, "system.0.text", id="system-block-text"),
    pytest.param({"tools": 1}, "tools", id="tools-number"),
    pytest.param({"tools": [{"name": "f", "input_schema": "s"}]}, "tools.0.input_schema", id="input-schema"),
    pytest.param({"tool_choice": "auto"}, "tool_choice", id="tool-choice-string"),
    pytest.param({"stop_sequences": "END"}, "stop_sequences", id="stop-sequences-string"),
    pytest.param({"metadata": {"user_id": 1}}, "metadata.user_id", id="metadata-user-id"),
    pytest.param({"messages": [{"role": "user", "content": 1}]}, "messages.0.content", id="content-number"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image", "source": "s"}]}]},
                 "messages.0.content.0.source", id="image-source"),
    pytest.param({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]}]},
                 "messages.0.content.0.input", id="tool-use-input"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 5}]}]},
                 "messages.0.content.0.content", id="tool-result-content"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": 5}]}]}]},
                 "messages.0.content.0.content.0.text", id="tool-result-nested-text"),
]


@pytest.mark.parametrize("change, field", ANTHROPIC_CONFUSED)
def test_anthropic_type_confused_fields_name_the_field(change, field):
    with pytest.raises(InvalidRequest) as info:
        ANTHROPIC.parse(anthropic(**change))
    assert info.value.param == field and info.value.message.startswith(f"'{field}' must be")


@pytest.mark.parametrize("api, raw", [
    pytest.param(OPENAI, openai(stop=None, tools=None, user=None, messages=[{"role": "assistant", "content": None,
                                                                            "tool_calls": None}]), id="openai-nulls"),
    pytest.param(OPENAI, openai(messages=[{"role": "user", "content": [{"type": "input_text_v9", "anything": 1}]}]),
                 id="openai-unknown-part-type"),
    pytest.param(ANTHROPIC, anthropic(system=None, messages=[{"role": "user", "content": [{"type": "search_result", "x": 1}]}]),
                 id="anthropic-unknown-block-type"),
    pytest.param(OPENAI, openai(brand_new={"any": [1, "shape"]}), id="unknown-field"),
])
def test_what_the_edge_does_not_read_passes(api, raw):
    api.parse(raw)


# -- no refusal after a pick keeps a half-open probe slot ----------------------------------------

CONFIG = parse_config("""
providers:
  - {name: oa, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}
  - {name: an, kind: anthropic, base_url: "http://127.0.0.1:2", models: [claude-haiku-4-5]}
""")


def answer(policy, body: bytes):
    st = policy.new_stream()
    assert isinstance(policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False), Continue)
    decision = policy.on_request_body(st, body)
    policy.on_stream_end(st)
    return decision


@pytest.mark.parametrize("provider, model, refused", [
    pytest.param("oa", "gpt-4o-mini", {"max_tokens": 100_000}, id="output-over-the-limit-refused-before-the-pick"),
    pytest.param("an", "claude-haiku-4-5", {"n": 2}, id="untranslatable-refused-after-the-pick"),
])
def test_a_refused_request_gives_its_probe_slot_back(provider, model, refused):
    keys = {"oa": None, "an": None}
    clock = FakeClock()
    router = Router(CONFIG, keys, MemoryBreakerStore(clock=clock), prices=load_pricing().price)
    policy = Policy(CONFIG, clock, keys, router=router)
    policy.router.force(provider, BreakerState.HALF_OPEN)
    decision = answer(policy, json.dumps({"model": model, "messages": HI, **refused}).encode())
    assert isinstance(decision, Respond) and decision.status == 400
    # The one probe slot is free: this request is the probe.
    decision = answer(policy, json.dumps({"model": model, "messages": HI}).encode())
    assert isinstance(decision, Continue), decision


# -- a large body is parsed apart, off the event loop --------------------------------------------

@pytest.mark.parametrize("messages, status", [
    pytest.param([{"role": "user", "content": "x" * (2 << 20)}], None, id="one-large-message-routed"),
    pytest.param([{"role": "user", "content": "hi"}] * 200_000, 413, id="too-many-messages-refused"),
])
def test_a_body_over_a_mebibyte_is_parsed_as_a_need_then_checked_as_inline(messages, status):
    from edge_ext.policy.needs import ParseBody

    keys = {"oa": None, "an": None}
    policy = Policy(CONFIG, FakeClock(), keys)
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    need = policy.on_request_body(st, json.dumps({"model": "gpt-4o-mini", "messages": messages}).encode())
    assert isinstance(need, ParseBody) and need.extend_s > 0  # Envoy's deadline extended meanwhile
    try:  # what the driver does in its thread
        result = need.parse(need.body, need.limits)
    except Exception as exc:  # noqa: BLE001 - the refusal goes back as the result
        result = exc
    decision = policy.resume(st, result)
    policy.on_stream_end(st)
    if status is None:
        assert isinstance(decision, Continue) and dict(decision.set_headers)["x-edge-cluster"] == "provider_oa"
    else:
        assert isinstance(decision, Respond) and decision.status == status
