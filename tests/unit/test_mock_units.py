"""Pure building blocks of the mock: token rule, reply planning, faults,
recording and settings. These pin the documented contracts that other
edge-ext tests compute expected figures from."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ext.mock import wire
from edge_ext.mock.faults import FaultError, FaultQueue, FaultSpec, parse_headers
from edge_ext.mock.recording import Recorder, headers_dict
from edge_ext.mock.replies import (
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_STOP_SEQUENCE,
    KnobError,
    ReplyKnobs,
    plan_text,
    plan_tool_call,
)
from edge_ext.mock.settings import MockSettings
from edge_ext.mock.tokens import (
    AUDIO_TOKENS,
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    count_completion,
    count_messages,
    count_text,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        pytest.param("", 0, id="empty-is-zero"),
        pytest.param("   ", 1, id="whitespace-only-is-one"),
        pytest.param("one", 1, id="single-word"),
        pytest.param("one two\tthree\nfour", 4, id="any-whitespace-separates"),
        pytest.param(None, 0, id="non-text-is-zero"),
    ],
)
def test_count_text(text, tokens):
    assert count_text(text) == tokens


def test_count_messages_rule():
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "look at this"},
            {"type": "image_url", "image_url": {"url": "data:,"}},
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
        ]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "done"},
    ]
    count = count_messages(messages, system="Be nice")
    expected = (REPLY_PRIMING + 4 * MESSAGE_OVERHEAD + 2 + 3 + IMAGE_TOKENS + AUDIO_TOKENS + 1 + 2 + 1)
    assert count.total == expected
    assert count.audio == AUDIO_TOKENS


def test_tools_count_their_json_words():
    tool = {"name": "search", "input_schema": {"type": "object"}}
    base = count_messages([{"role": "user", "content": "hi"}]).total
    with_tool = count_messages([{"role": "user", "content": "hi"}], tools=[tool]).total
    assert with_tool - base == len(json.dumps(tool, sort_keys=True).split())


def test_completion_is_at_least_one_token():
    assert count_completion("") == 1


@pytest.mark.parametrize(
    ("kwargs", "text", "finish", "stop_sequence"),
    [
        pytest.param({}, "Mock reply to: Hi. This is a deterministic mock answer.", FINISH_STOP, None,
                     id="default-reply"),
        pytest.param({"max_tokens": 2}, "Mock reply", FINISH_LENGTH, None, id="max-tokens"),
        pytest.param({"stop": ("answer", "This")}, "Mock reply to: Hi.", FINISH_STOP_SEQUENCE, "This",
                     id="earliest-stop"),
        pytest.param({"stop": ("Mock",)}, "", FINISH_STOP_SEQUENCE, "Mock", id="stop-at-start-gives-empty"),
        pytest.param({"stop": ("This",), "max_tokens": 2}, "Mock reply", FINISH_LENGTH, None,
                     id="length-wins-when-budget-runs-out-first"),
        pytest.param({"knobs": ReplyKnobs(output_words=12)},
                     "Mock reply to: Hi. This is a deterministic mock answer. lorem ipsum", FINISH_STOP, None,
                     id="output-words-pads-with-filler"),
        pytest.param({"knobs": ReplyKnobs(reply="exact   words here", output_words=2)}, "exact words",
                     FINISH_STOP, None, id="reply-knob-then-output-words"),
        pytest.param({"tool_result_text": "42 degrees"},
                     "Mock reply using tool result: 42 degrees. This is a deterministic mock answer.",
                     FINISH_STOP, None, id="after-tool-result"),
    ],
)
def test_plan_text(kwargs, text, finish, stop_sequence):
    plan = plan_text("Hi", **kwargs)
    assert (plan.text, plan.finish, plan.stop_sequence) == (text, finish, stop_sequence)


def test_snippet_is_first_40_chars_whitespace_collapsed():
    plan = plan_text("  A   long\nquestion " + "x" * 100)
    assert plan.text.startswith("Mock reply to: A long question " + "x" * 24 + ". ")


def test_tool_call_plan_tokens():
    plan = plan_tool_call("search", "find cats")
    assert plan.tool_arguments == {"query": "find cats"}
    # name (1) + words of '{"query": "find cats"}' (3).
    assert plan.completion_tokens == 4


@settings(max_examples=200, deadline=None)
@given(
    user_text=st.text(max_size=120),
    max_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=30)),
    stops=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz:. ", min_size=1, max_size=6), max_size=4),
)
def test_plan_text_properties(user_text, max_tokens, stops):
    plan = plan_text(user_text, max_tokens=max_tokens, stop=tuple(stops))
    assert "".join(plan.deltas()) == plan.text
    if max_tokens is not None:
        assert len(plan.words) <= max_tokens
    assert plan.completion_tokens == max(1, len(plan.words))
    if plan.finish == FINISH_STOP_SEQUENCE:
        assert plan.stop_sequence in stops
    if plan.finish != FINISH_LENGTH:
        assert not any(s.strip() and s in plan.text for s in stops)


def test_reply_knobs_from_headers():
    knobs = ReplyKnobs.from_headers({"x-mock-cached-tokens": "5", "x-mock-reasoning-tokens": "2"})
    assert (knobs.cached_tokens, knobs.reasoning_tokens, knobs.cache_creation_tokens) == (5, 2, 0)
    with pytest.raises(KnobError):
        ReplyKnobs.from_headers({"x-mock-output-words": "many"})


def test_parse_headers():
    assert parse_headers({"authorization": "Bearer x"}) is None
    spec = parse_headers({"x-mock-status": "429", "x-mock-retry-after": "2.0", "x-mock-drop-after": "1"})
    assert (spec.status, spec.retry_after, spec.cut_after) == (429, "2", 1)
    assert parse_headers({"x-mock-status": "500"}).retry_after_header() is None
    assert parse_headers({"x-mock-status": "429"}).retry_after_header() == "1"
    for bad in ({"x-mock-status": "99"}, {"x-mock-drop": "later"}, {"x-mock-latency-ms": "999999999"},
                {"x-mock-retry-after": "-1"}):
        with pytest.raises(FaultError):
            parse_headers(bad)


def test_header_fault_overrides_scripted_fields():
    merged = FaultSpec(status=500, latency_ms=10).override(FaultSpec(status=429))
    assert (merged.status, merged.latency_ms) == (429, 10)


def test_fault_queue_fifo_counts_and_paths():
    queue = FaultQueue(max_len=3)
    queue.add([{"status": 500, "count": 2}, {"status": 429, "path": "/v1/messages"}])
    assert queue.take("/v1/chat/completions").status == 500
    assert queue.take("/v1/messages").status == 500
    assert queue.take("/v1/chat/completions") is None  # remaining fault only matches /v1/messages
    assert queue.take("/v1/messages").status == 429
    assert len(queue) == 0
    queue.add({"drop": "before-response", "count": -1})
    assert all(queue.take("/x").drop == "before-response" for _ in range(5))
    assert queue.snapshot()[0]["fired"] == 5
    with pytest.raises(FaultError):
        queue.add([{"status": 500}] * 3)
    assert queue.clear() == 1


def test_recorder_ring_and_counters():
    recorder = Recorder(max_records=2)
    for i in range(3):
        entry = recorder.record(method="POST", path=f"/p{i % 2}", query="", headers={}, body="{}", parsed={},
                                api="openai")
        recorder.finish(entry, 200 if i else None, "ok")
    assert [r["seq"] for r in recorder.list()] == [2, 3]
    assert recorder.list(limit=1)[0]["seq"] == 3
    assert recorder.stats()["paths"] == {"/p0": 2, "/p1": 1}
    assert recorder.stats()["statuses"] == {"none": 1, "200": 2}


def test_headers_dict_lowercases_and_joins_repeats():
    class Multi:
        def items(self):
            return [("X-A", "1"), ("x-a", "2"), ("Authorization", "Bearer k")]

    assert headers_dict(Multi()) == {"x-a": "1, 2", "authorization": "Bearer k"}


def test_settings_validation_and_env():
    with pytest.raises(ValueError):
        MockSettings(port=-1)
    with pytest.raises(ValueError):
        MockSettings(latency_ms=10**9)
    env = {"EDGE_EXT_MOCK_OPENAI_KEY": "sk-env", "EDGE_EXT_MOCK_LATENCY_MS": "25"}
    settings_ = MockSettings.from_env(env, port=0, openai_key=None)
    assert (settings_.openai_key, settings_.latency_ms, settings_.port) == ("sk-env", 25, 0)
    assert MockSettings.from_env(env, openai_key="sk-flag").openai_key == "sk-flag"


def test_sse_framing():
    assert wire.sse_data({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert wire.sse_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert wire.new_id("msg_01", 22).startswith("msg_01") and len(wire.new_id("msg_01", 22)) == 28
