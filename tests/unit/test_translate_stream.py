"""Stream translators on hand-written event sequences: exact output frames."""

from __future__ import annotations

import json

import anthropic.types
import openai.types.chat
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ext.sse import Event, SSEParser, encode
from edge_ext.translate import AnthropicToOpenAIStream, OpenAIStreamPassthrough, OpenAIToAnthropicStream
from edge_ext.usage import Usage

CREATED = 1_760_000_000
RAW_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def ant(name: str, **payload) -> Event:
    return Event(name, json.dumps({"type": name, **payload}))


def oai(choices: list, usage=..., cid: str = "chatcmpl-Q1") -> Event:
    chunk = {"id": cid, "object": "chat.completion.chunk", "created": 5, "model": "gpt-4o", "choices": choices}
    if usage is not ...:
        chunk["usage"] = usage
    return Event(None, json.dumps(chunk))


def choice(delta: dict, finish: str | None = None, index: int = 0) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def parse(frames: bytes) -> list[Event]:
    parser = SSEParser()
    events = parser.feed(frames)
    assert not parser.pending, "translators emit whole events only"
    return events


def openai_payloads(frames: bytes) -> list:
    """Chunks as dicts, with "[DONE]" kept as a marker; every chunk validated."""
    out: list = []
    for event in parse(frames):
        assert event.event is None
        if event.data == "[DONE]":
            out.append("[DONE]")
            continue
        payload = json.loads(event.data)
        if "error" not in payload:
            openai.types.chat.ChatCompletionChunk.model_validate(payload)
        out.append(payload)
    return out


def anthropic_payloads(frames: bytes) -> list[dict]:
    out = []
    for event in parse(frames):
        payload = json.loads(event.data)
        assert event.event == payload["type"], "Anthropic names every event after its type"
        if event.event == "error":
            anthropic.types.ErrorResponse.model_validate(payload)
        else:
            RAW_EVENT.validate_python(payload)
        out.append(payload)
    return out


CLAUDE_TEXT = [
    ant("message_start", message={"id": "msg_01T", "type": "message", "role": "assistant", "model": "claude",
                                  "content": [], "stop_reason": None, "stop_sequence": None,
                                  "usage": {"input_tokens": 25, "cache_read_input_tokens": 100,
                                            "cache_creation_input_tokens": 7, "output_tokens": 1}}),
    ant("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    ant("ping"),
    ant("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"}),
    ant("content_block_delta", index=0, delta={"type": "text_delta", "text": " wörld"}),
    ant("content_block_stop", index=0),
    ant("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None}, usage={"output_tokens": 15}),
    ant("message_stop"),
]


def a2o_chunk(delta: dict, finish: str | None = None, usage: bool = True) -> dict:
    chunk = {"id": "chatcmpl-01T", "object": "chat.completion.chunk", "created": CREATED, "model": "gpt-alias",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = None
    return chunk


def run_a2o(events: list[Event], include_usage: bool = True, clean: bool | None = True) -> bytes:
    stream = AnthropicToOpenAIStream("gpt-alias", CREATED, include_usage)
    out = b"".join(stream.feed(e) for e in events)
    return out + (stream.finish(clean) if clean is not None else b"")


def test_a2o_text_with_usage() -> None:
    assert openai_payloads(run_a2o(CLAUDE_TEXT)) == [
        a2o_chunk({"role": "assistant", "content": "", "refusal": None}),
        a2o_chunk({"content": "Hello"}),
        a2o_chunk({"content": " wörld"}),
        a2o_chunk({}, "stop"),
        {"id": "chatcmpl-01T", "object": "chat.completion.chunk", "created": CREATED, "model": "gpt-alias",
         "choices": [],
         # prompt = 25 uncached + 100 cache reads + 7 cache writes; output is
         # message_delta's cumulative 15, not 15 + message_start's 1.
         "usage": {"prompt_tokens": 132, "completion_tokens": 15, "total_tokens": 147,
                   "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7}}},
        "[DONE]",
    ]


def test_translators_expose_upstream_usage() -> None:
    a2o = AnthropicToOpenAIStream("m", CREATED, False)
    assert a2o.usage is None
    for event in CLAUDE_TEXT:
        a2o.feed(event)
    assert a2o.usage == Usage(input_tokens=25, output_tokens=15, cached_input_tokens=100, cache_write_tokens=7)
    o2a = OpenAIToAnthropicStream("m")
    for event in OPENAI_TEXT:
        o2a.feed(event)
    assert o2a.usage == Usage(input_tokens=20, output_tokens=50, cached_input_tokens=100, reasoning_tokens=30)


def test_a2o_without_include_usage_has_no_usage_at_all() -> None:
    payloads = openai_payloads(run_a2o(CLAUDE_TEXT, include_usage=False))
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in p for p in payloads[:-1])
    assert payloads[-2] == a2o_chunk({}, "stop", usage=False)


def test_a2o_text_then_tools_skips_thinking() -> None:
    events = [
        CLAUDE_TEXT[0],
        ant("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ant("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}),
        ant("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig"}),
        ant("content_block_stop", index=0),
        ant("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        ant("content_block_delta", index=1, delta={"type": "text_delta", "text": "Checking."}),
        ant("content_block_stop", index=1),
        ant("content_block_start", index=2, content_block={"type": "tool_use", "id": "toolu_A", "name": "a",
                                                           "input": {}}),
        ant("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": ""}),
        ant("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"x":'}),
        ant("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": "1}"}),
        ant("content_block_stop", index=2),
        ant("content_block_start", index=3, content_block={"type": "tool_use", "id": "toolu_B", "name": "b",
                                                           "input": {}}),
        ant("content_block_delta", index=3, delta={"type": "input_json_delta", "partial_json": "{}"}),
        ant("content_block_stop", index=3),
        ant("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 30}),
        ant("message_stop"),
    ]
    payloads = openai_payloads(run_a2o(events, include_usage=False))
    assert [p["choices"][0]["delta"] for p in payloads[:-1]] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "Checking."},
        {"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "a", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function", "function": {"name": "b", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert payloads[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_a2o_error_event_ends_the_stream_without_done() -> None:
    error = ant("error", error={"type": "overloaded_error", "message": "Overloaded"})
    stream = AnthropicToOpenAIStream("m", CREATED, True)
    out = b"".join(stream.feed(e) for e in [*CLAUDE_TEXT[:4], error, *CLAUDE_TEXT[4:]])
    out += stream.finish(True)
    payloads = openai_payloads(out)
    assert payloads[-1] == {"error": {"message": "Overloaded", "type": "api_error", "param": None,
                                      "code": "overloaded"}}
    assert "[DONE]" not in payloads and len(payloads) == 3


@pytest.mark.parametrize("clean", [True, False])
def test_a2o_cut_before_message_stop_is_an_error_never_done(clean: bool) -> None:
    payloads = openai_payloads(run_a2o(CLAUDE_TEXT[:-1], clean=clean))
    assert "[DONE]" not in payloads
    assert payloads[-1]["error"]["type"] == "api_error"
    assert payloads[-1]["error"]["code"] == "stream_truncated"


def test_a2o_finish_after_clean_end_adds_nothing() -> None:
    stream = AnthropicToOpenAIStream("m", CREATED, False)
    for event in CLAUDE_TEXT:
        stream.feed(event)
    assert stream.finish(True) == b"" and stream.finish(False) == b""
    assert stream.feed(CLAUDE_TEXT[3]) == b""


def test_a2o_garbage_event_is_an_error() -> None:
    stream = AnthropicToOpenAIStream("m", CREATED, False)
    stream.feed(CLAUDE_TEXT[0])
    assert json.loads(parse(stream.feed(Event("content_block_delta", "{oops")))[0].data)["error"]["type"] == "api_error"


# -- OpenAI -> Anthropic ----------------------------------------------------

OPENAI_USAGE = {"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 30}}

OPENAI_TEXT = [
    oai([choice({"role": "assistant", "content": "", "refusal": None})], None),
    oai([choice({"content": "Hello"})], None),
    oai([choice({"content": " wörld"})], None),
    oai([choice({}, "stop")], None),
    oai([], OPENAI_USAGE),
    Event(None, "[DONE]"),
]


def run_o2a(events: list[Event], clean: bool | None = True, strip: bool = False) -> bytes:
    stream = OpenAIToAnthropicStream("claude-alias", include_usage_strip=strip)
    out = b"".join(stream.feed(e) for e in events)
    return out + (stream.finish(clean) if clean is not None else b"")


MESSAGE_START = {"type": "message_start", "message": {
    "id": "msg_Q1", "type": "message", "role": "assistant", "model": "claude-alias", "content": [],
    "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}}


def test_o2a_text_with_usage() -> None:
    assert anthropic_payloads(run_o2a(OPENAI_TEXT)) == [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " wörld"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
                   "output_tokens": 50}},
        {"type": "message_stop"},
    ]


def test_o2a_strip_keeps_only_output_tokens() -> None:
    payloads = anthropic_payloads(run_o2a(OPENAI_TEXT, strip=True))
    assert payloads[-2]["usage"] == {"output_tokens": 50}


def test_o2a_without_usage_chunk_ends_at_done() -> None:
    events = [e for e in OPENAI_TEXT if '"choices": []' not in e.data]
    stream = OpenAIToAnthropicStream("claude-alias")
    outputs = [stream.feed(e) for e in events]
    # Nothing is final until [DONE]: the usage chunk might still come.
    assert b"message_delta" not in b"".join(outputs[:-1])
    payloads = anthropic_payloads(b"".join(outputs) + stream.finish(True))
    assert payloads[-2] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": 0}}
    assert payloads[-1] == {"type": "message_stop"}


def test_o2a_parallel_tool_calls_and_azure_head_chunk() -> None:
    head = Event(None, json.dumps({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                                   "prompt_filter_results": []}))
    events = [
        head,
        oai([choice({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_A", "type": "function", "function": {"name": "a", "arguments": ""}}]})]),
        oai([choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]})]),
        oai([choice({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})]),
        oai([choice({"tool_calls": [{"index": 1, "id": "call_B", "type": "function",
                                     "function": {"name": "b", "arguments": "{}"}}]})]),
        oai([choice({}, "tool_calls")], {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
    ]
    payloads = anthropic_payloads(run_o2a(events))
    assert payloads[1:] == [
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "call_A", "name": "a", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"x":'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "call_B", "name": "b", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_stop", "index": 1},
        # Usage on the finish chunk itself (some compatible servers): final at once.
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                   "output_tokens": 4}},
        {"type": "message_stop"},
    ]


def test_o2a_error_chunk() -> None:
    error = Event(None, json.dumps({"error": {"message": "The server had an error", "type": "server_error",
                                              "param": None, "code": None}}))
    payloads = anthropic_payloads(run_o2a([*OPENAI_TEXT[:2], error, *OPENAI_TEXT[2:]]))
    assert payloads[-1] == {"type": "error", "error": {"type": "api_error", "message": "The server had an error"}}
    assert {"type": "message_stop"} not in payloads


@pytest.mark.parametrize("clean", [True, False])
def test_o2a_truncated(clean: bool) -> None:
    payloads = anthropic_payloads(run_o2a(OPENAI_TEXT[:3], clean=clean))
    assert payloads[-1]["type"] == "error"
    assert payloads[-1]["error"]["type"] == "api_error"
    assert "cut" in payloads[-1]["error"]["message"]
    assert {"type": "message_stop"} not in payloads


# -- passthrough ------------------------------------------------------------

def test_passthrough_strips_what_the_gateway_added() -> None:
    stream = OpenAIStreamPassthrough(strip_usage=True)
    out = b"".join(stream.feed(e) for e in OPENAI_TEXT) + stream.finish(True)
    payloads = openai_payloads(out)
    assert payloads[-1] == "[DONE]"
    assert len(payloads) == 5  # the usage-only chunk is gone
    assert all("usage" not in p for p in payloads[:-1])
    # Untouched otherwise: same chunks as the upstream minus the usage field.
    expected = [json.loads(e.data) for e in OPENAI_TEXT[:4]]
    for chunk in expected:
        del chunk["usage"]
    assert payloads[:-1] == expected


def test_passthrough_without_strip_is_byte_identical() -> None:
    upstream = b"".join(encode(e.event, e.data) for e in OPENAI_TEXT)
    stream = OpenAIStreamPassthrough(strip_usage=False)
    assert b"".join(stream.feed(e) for e in parse(upstream)) + stream.finish(True) == upstream


def test_passthrough_ends_on_an_error_chunk() -> None:
    stream = OpenAIStreamPassthrough(strip_usage=True)
    error = Event(None, '{"error":{"message":"boom","type":"server_error","param":null,"code":null}}')
    assert stream.feed(error) == encode(None, error.data)
    assert stream.feed(OPENAI_TEXT[1]) == b"" and stream.finish(False) == b""


@pytest.mark.parametrize("clean", [True, False])
def test_passthrough_truncated(clean: bool) -> None:
    stream = OpenAIStreamPassthrough(strip_usage=True)
    for event in OPENAI_TEXT[:3]:
        stream.feed(event)
    assert json.loads(parse(stream.finish(clean))[0].data)["error"]["code"] == "stream_truncated"


# -- chunking never changes the translation ----------------------------------

@settings(max_examples=100, deadline=None)
@given(st.data())
def test_translation_is_independent_of_chunking(data) -> None:
    upstream = b"".join(encode(e.event, e.data) for e in CLAUDE_TEXT)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(upstream)), max_size=30)))
    parser = SSEParser()
    stream = AnthropicToOpenAIStream("gpt-alias", CREATED, True)
    out = b""
    last = 0
    for cut in [*cuts, len(upstream)]:
        for event in parser.feed(upstream[last:cut]):
            out += stream.feed(event)
        last = cut
    out += stream.finish(not parser.pending)
    assert out == run_a2o(CLAUDE_TEXT)
