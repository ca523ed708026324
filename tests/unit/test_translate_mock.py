"""Translation of real-shaped traffic from the in-process mock providers.

Each test takes what the mock (a faithful OpenAI / Anthropic stand-in) sends,
translates it, and has the *other* API's official SDK types parse the result:
``ChatCompletion`` / ``ChatCompletionChunk`` for OpenAI and ``Message`` /
``RawMessageStreamEvent`` for Anthropic. Streams are also folded by each
SDK's own accumulator and must agree with the translated JSON reply.
Translated requests are sent to the other API's mock, which validates them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anthropic.types
import openai.types.chat
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from openai.lib.streaming.chat import ChatCompletionStreamState

from edge_ext.mock.server import start_mock
from edge_ext.mock.settings import MockSettings
from edge_ext.sse import Event, SSEParser
from edge_ext.translate import (
    AnthropicToOpenAIStream,
    OpenAIStreamPassthrough,
    OpenAIToAnthropicStream,
    anthropic_error_from_openai,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_error_from_anthropic,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from edge_ext.usage import StreamUsage, from_anthropic, from_openai

CREATED = int(time.time())
RAW_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
CLAUDE = "claude-haiku-4-5"
GPT = "gpt-4o-mini"
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
CLAUDE_TOOL = {"name": "search", "description": "Search", "input_schema": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
OPENAI_TOOL = {"type": "function", "function": {"name": "search", "description": "Search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
# Usage knobs of the mock, so cache and reasoning figures are non-zero.
USAGE_KNOBS = {"x-mock-cached-tokens": "6", "x-mock-cache-creation-tokens": "3", "x-mock-reasoning-tokens": "4"}


@pytest.fixture
async def upstream():
    handle = await start_mock(MockSettings(port=0))
    session = aiohttp.ClientSession()
    yield handle.url, session
    await session.close()
    await handle.stop()


async def post(upstream, path: str, body: dict, headers: dict | None = None) -> tuple[int, bytes, bool]:
    """(status, raw body, clean): clean is False when the connection was cut."""
    url, session = upstream
    async with session.post(url + path, json=body, headers=headers or {}) as response:
        data = b""
        try:
            async for piece in response.content.iter_any():
                data += piece
        except aiohttp.ClientPayloadError:
            return response.status, data, False
        return response.status, data, True


async def claude(upstream, body: dict, headers: dict | None = None) -> tuple[int, bytes, bool]:
    return await post(upstream, "/v1/messages", {"model": CLAUDE, "max_tokens": 200, **body},
                      {**ANTHROPIC_HEADERS, **(headers or {})})


async def gpt(upstream, body: dict, headers: dict | None = None) -> tuple[int, bytes, bool]:
    return await post(upstream, "/v1/chat/completions", {"model": GPT, **body}, headers)


def events_of(raw: bytes) -> tuple[list[Event], bool]:
    parser = SSEParser()
    events = parser.feed(raw)
    # Feeding in tiny pieces must give the same events as one big chunk.
    small = SSEParser()
    assert [e for i in range(0, len(raw), 5) for e in small.feed(raw[i:i + 5])] == events
    return events, not parser.pending


def openai_chunks(frames: bytes) -> tuple[list[dict], bool]:
    """Translated OpenAI stream -> validated chunk dicts, and whether it
    ended with [DONE]; an error chunk is returned as-is."""
    chunks, done = [], False
    for event in SSEParser().feed(frames):
        assert not done, "nothing may follow [DONE]"
        if event.data == "[DONE]":
            done = True
            continue
        payload = json.loads(event.data)
        if "error" not in payload:
            openai.types.chat.ChatCompletionChunk.model_validate(payload)
        chunks.append(payload)
    return chunks, done


def anthropic_events(frames: bytes) -> list[dict]:
    out = []
    for event in SSEParser().feed(frames):
        payload = json.loads(event.data)
        assert event.event == payload["type"]
        if payload["type"] == "error":
            anthropic.types.ErrorResponse.model_validate(payload)
        else:
            RAW_EVENT.validate_python(payload)
        out.append(payload)
    return out


def claude_stream_to_openai(raw: bytes, clean: bool, include_usage: bool = True) -> bytes:
    events, complete = events_of(raw)
    stream = AnthropicToOpenAIStream(GPT, CREATED, include_usage)
    return b"".join(stream.feed(e) for e in events) + stream.finish(clean and complete)


def gpt_stream_to_anthropic(raw: bytes, clean: bool) -> bytes:
    events, complete = events_of(raw)
    stream = OpenAIToAnthropicStream(CLAUDE)
    return b"".join(stream.feed(e) for e in events) + stream.finish(clean and complete)


def fold_openai(chunks: list[dict]) -> Any:
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk))
    # The snapshot, not get_final_completion(), which refuses length-cut replies.
    return state.current_completion_snapshot


def fold_anthropic(events: list[dict]) -> anthropic.types.Message:
    snapshot, bufs = None, {}
    for payload in events:
        snapshot = accumulate_event(event=RAW_EVENT.validate_python(payload), current_snapshot=snapshot,
                                    json_bufs=bufs)
    return anthropic.types.Message.model_validate(snapshot.to_dict())


# -- Anthropic upstream, OpenAI client -----------------------------------------

CLAUDE_CASES = {
    "text": ({"messages": [{"role": "user", "content": "Tell me about SSE parsers"}]}, {}, "stop"),
    "tool via tool_choice": (
        {"messages": [{"role": "user", "content": "find cats"}], "tools": [CLAUDE_TOOL],
         "tool_choice": {"type": "tool", "name": "search"}}, {}, "tool_calls"),
    "tool via auto": (
        {"messages": [{"role": "user", "content": "please use tool for cats"}], "tools": [CLAUDE_TOOL]}, {},
        "tool_calls"),
    "max_tokens": ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}, {}, "length"),
    "stop sequence": ({"messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["deterministic"]}, {},
                      "stop"),
    "non-ASCII reply": ({"messages": [{"role": "user", "content": "hi"}]}, {"x-mock-reply": "Grüße 日本 🎉 ok"}, "stop"),
}


@pytest.mark.parametrize(("body", "headers", "finish"), CLAUDE_CASES.values(), ids=CLAUDE_CASES.keys())
async def test_anthropic_replies_become_valid_openai(upstream, body: dict, headers: dict, finish: str) -> None:
    headers = {**USAGE_KNOBS, **headers}
    status, raw_json, _ = await claude(upstream, body, headers)
    assert status == 200
    reply = json.loads(raw_json)
    translated = anthropic_to_openai_response(reply, model=GPT, created=CREATED)
    completion = openai.types.chat.ChatCompletion.model_validate(translated)
    assert completion.choices[0].finish_reason == finish
    assert from_openai(translated) == from_anthropic(reply)
    text = "".join(b["text"] for b in reply["content"] if b["type"] == "text")
    assert (completion.choices[0].message.content or "") == text

    status, raw_sse, clean = await claude(upstream, {**body, "stream": True}, headers)
    assert status == 200 and clean
    chunks, done = openai_chunks(claude_stream_to_openai(raw_sse, clean))
    assert done
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert streamed == text
    final = fold_openai(chunks)
    assert final.choices[0].finish_reason == finish
    assert final.usage.model_dump(exclude_none=True) == translated["usage"]
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in final.choices[0].message.tool_calls or []]
    assert calls == [(b["name"], b["input"]) for b in reply["content"] if b["type"] == "tool_use"]

    # Usage accounting on the raw upstream stream matches the JSON reply.
    tracker = StreamUsage("anthropic")
    for event in events_of(raw_sse)[0]:
        tracker.observe(event)
    assert tracker.usage == from_anthropic(reply)


async def test_anthropic_stream_cut_mid_stream_is_an_openai_error(upstream) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, raw, clean = await claude(upstream, body, {"x-mock-drop": "mid-stream"})
    assert status == 200 and not clean
    chunks, done = openai_chunks(claude_stream_to_openai(raw, clean))
    assert not done
    assert chunks[-1]["error"]["type"] == "api_error"
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks[:-1])


async def test_anthropic_in_stream_error_is_an_openai_error(upstream) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, raw, clean = await claude(upstream, body, {"x-mock-stream-error": "529"})
    assert status == 200 and clean
    chunks, done = openai_chunks(claude_stream_to_openai(raw, clean))
    assert not done
    assert chunks[-1] == {"error": {"message": "Overloaded", "type": "api_error", "param": None,
                                    "code": "overloaded"}}


async def test_anthropic_http_errors_become_openai_errors(upstream) -> None:
    # A real validation error (no max_tokens) and an injected rate limit.
    status, raw, _ = await post(upstream, "/v1/messages", {"model": CLAUDE, "messages": [
        {"role": "user", "content": "hi"}]}, ANTHROPIC_HEADERS)
    assert status == 400
    assert json.loads(openai_error_from_anthropic(status, raw)) == {"error": {
        "message": "max_tokens: Field required", "type": "invalid_request_error", "param": None, "code": None}}
    status, raw, _ = await claude(upstream, {"messages": [{"role": "user", "content": "hi"}]},
                                  {"x-mock-status": "429"})
    assert status == 429
    assert json.loads(openai_error_from_anthropic(status, raw))["error"]["type"] == "rate_limit_error"


# -- OpenAI upstream, Anthropic client -----------------------------------------

GPT_CASES = {
    "text": ({"messages": [{"role": "user", "content": "Tell me about SSE parsers"}]}, "end_turn"),
    "tool required": ({"messages": [{"role": "user", "content": "find cats"}], "tools": [OPENAI_TOOL],
                       "tool_choice": "required"}, "tool_use"),
    "tool via auto": ({"messages": [{"role": "user", "content": "please use tool for cats"}],
                       "tools": [OPENAI_TOOL]}, "tool_use"),
    "length": ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}, "max_tokens"),
}


@pytest.mark.parametrize(("body", "stop_reason"), GPT_CASES.values(), ids=GPT_CASES.keys())
async def test_openai_replies_become_valid_anthropic(upstream, body: dict, stop_reason: str) -> None:
    status, raw_json, _ = await gpt(upstream, body, USAGE_KNOBS)
    assert status == 200
    reply = json.loads(raw_json)
    translated = openai_to_anthropic_response(reply, model=CLAUDE)
    message = anthropic.types.Message.model_validate(translated)
    assert message.stop_reason == stop_reason
    text = reply["choices"][0]["message"]["content"] or ""
    assert "".join(b.text for b in message.content if b.type == "text") == text

    # The gateway always asks an OpenAI upstream for usage on a stream.
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    status, raw_sse, clean = await gpt(upstream, stream_body, USAGE_KNOBS)
    assert status == 200 and clean
    events = anthropic_events(gpt_stream_to_anthropic(raw_sse, clean))
    assert events[0]["type"] == "message_start" and events[-1] == {"type": "message_stop"}
    streamed = "".join(e["delta"]["text"] for e in events
                       if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta")
    assert streamed == text
    final = fold_anthropic(events)
    assert final.stop_reason == stop_reason
    # Tool call ids are random per upstream request; everything else matches.
    assert [b.model_dump(exclude={"id"}) for b in final.content] == [
        b.model_dump(exclude={"id"}) for b in message.content]
    assert final.usage.model_dump(exclude_none=True) == translated["usage"]

    tracker = StreamUsage("openai")
    for event in events_of(raw_sse)[0]:
        tracker.observe(event)
    assert tracker.usage == from_openai(reply)


async def test_openai_stream_cut_mid_stream_is_an_anthropic_error(upstream) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, raw, clean = await gpt(upstream, body, {"x-mock-drop": "mid-stream"})
    assert status == 200 and not clean
    events = anthropic_events(gpt_stream_to_anthropic(raw, clean))
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"
    assert "cut" in events[-1]["error"]["message"]
    assert all(e["type"] != "message_stop" for e in events)


async def test_openai_in_stream_error_is_an_anthropic_error(upstream) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, raw, clean = await gpt(upstream, body, {"x-mock-stream-error": "503"})
    assert status == 200 and clean
    events = anthropic_events(gpt_stream_to_anthropic(raw, clean))
    # An in-stream error has no HTTP status of its own and OpenAI's type is
    # the generic server_error, so the most an Anthropic client can be told
    # is api_error; the message survives.
    assert events[-1] == {"type": "error", "error": {
        "type": "api_error", "message": "The engine is currently overloaded, please try again later."}}


async def test_openai_http_errors_become_anthropic_errors(upstream) -> None:
    status, raw, _ = await gpt(upstream, {"messages": []})
    assert status == 400
    out = json.loads(anthropic_error_from_openai(status, raw))
    anthropic.types.ErrorResponse.model_validate(out)
    assert out["error"]["type"] == "invalid_request_error"
    assert out["error"]["message"].startswith("Invalid 'messages': empty array")
    status, raw, _ = await gpt(upstream, {"messages": [{"role": "user", "content": "hi"}]},
                               {"x-mock-status": "404"})
    assert json.loads(anthropic_error_from_openai(status, raw))["error"]["type"] == "not_found_error"


async def test_passthrough_hides_gateway_added_usage(upstream) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    _, plain, _ = await gpt(upstream, body)
    _, with_usage, clean = await gpt(upstream, {**body, "stream_options": {"include_usage": True}})
    stream = OpenAIStreamPassthrough(strip_usage=True)
    tracker = StreamUsage("openai")
    out = b""
    for event in events_of(with_usage)[0]:
        tracker.observe(event)
        out += stream.feed(event)
    out += stream.finish(clean)
    stripped, done = openai_chunks(out)
    expected, _ = openai_chunks(plain)
    assert done and tracker.usage is not None and tracker.usage.output_tokens > 0

    def shape(chunk: dict) -> dict:
        # ids, timestamps and obfuscation padding differ per request.
        return {k: v for k, v in chunk.items() if k not in ("id", "created", "obfuscation")}

    assert [shape(c) for c in stripped] == [shape(c) for c in expected]


# -- translated requests are accepted by the other API -------------------------

async def test_translated_openai_request_is_a_valid_anthropic_request(upstream) -> None:
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    body = {
        "model": GPT, "temperature": 1.5, "stop": ["zzz"], "user": "u-1", "tools": [OPENAI_TOOL],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"query":"x"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a pixel"},
        ],
    }
    translated = openai_to_anthropic_request(body, model=CLAUDE, default_max_tokens=64)
    status, raw, _ = await post(upstream, "/v1/messages", translated, ANTHROPIC_HEADERS)
    assert status == 200, raw
    reply = anthropic_to_openai_response(json.loads(raw), model=GPT, created=CREATED)
    assert reply["choices"][0]["message"]["content"].startswith("Mock reply using tool result: a pixel.")


async def test_translated_anthropic_request_is_a_valid_openai_request(upstream) -> None:
    body = {
        "model": CLAUDE, "max_tokens": 64, "system": "Be brief.", "tools": [CLAUDE_TOOL], "stream": True,
        "messages": [
            {"role": "user", "content": "find cats"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Searching."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"query": "cats"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 cats"}]},
        ],
    }
    translated = anthropic_to_openai_request(body, model=GPT)
    status, raw, clean = await post(upstream, "/v1/chat/completions", translated)
    assert status == 200, raw
    events = anthropic_events(gpt_stream_to_anthropic(raw, clean))
    final = fold_anthropic(events)
    assert final.content[0].text.startswith("Mock reply using tool result: 3 cats.")
    # include_usage was added by the translation, so the input side is known.
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
