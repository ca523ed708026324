"""Stream <-> JSON equivalence for the response cache.

Against the in-process mock (real API shapes, deterministic answers):
accumulating the stream gives the JSON answer to the same request, and
replaying the JSON answer gives a stream that both official SDKs accept and
that accumulates back to it. Hypothesis then replays random answers (unicode,
whitespace runs, tool calls, several choices or blocks) and checks that
nothing is lost. Truncated or failed streams must never yield an answer.
"""

from __future__ import annotations

import copy
import json

import aiohttp
import anthropic.types
import openai.types.chat
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState

from edge_ext.mock.server import start_mock
from edge_ext.mock.settings import MockSettings
from edge_ext.sse import Event, SSEParser, encode
from edge_ext.translate.accumulate import AnthropicAccumulator, OpenAIAccumulator
from edge_ext.translate.replay import replay_anthropic, replay_openai, split_words

RAW_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
OPENAI_TOOL = {"type": "function", "function": {"name": "search", "description": "Search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
CLAUDE_TOOL = {"name": "search", "description": "Search", "input_schema": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
LONG = {"x-mock-output-words": "40"}
USAGE_KNOBS = {"x-mock-cached-tokens": "6", "x-mock-cache-creation-tokens": "3", "x-mock-reasoning-tokens": "4"}
USER = [{"role": "user", "content": "Tell me about caching, with ünïcödé 🎉 and \"quotes\""}]


# -- helpers --------------------------------------------------------------------


@pytest.fixture
async def upstream():
    handle = await start_mock(MockSettings(port=0))
    session = aiohttp.ClientSession()
    yield handle.url, session
    await session.close()
    await handle.stop()


async def post(upstream, path: str, body: dict, headers: dict) -> bytes:
    url, session = upstream
    async with session.post(url + path, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        data = b""
        try:
            async for piece in response.content.iter_any():
                data += piece
        except aiohttp.ClientPayloadError:
            # A deliberately dropped connection: keep what arrived.
            pass
        return data


def events(raw: bytes) -> list[Event]:
    return SSEParser().feed(raw)


def accumulate(acc, raw: bytes):
    for event in events(raw):
        acc.feed(event)
    return acc


def openai_normalized(completion: dict) -> dict:
    """The mock draws fresh ids (and a fingerprint) per request."""
    out = copy.deepcopy(completion)
    out["id"] = out["created"] = out["system_fingerprint"] = None
    for choice in out["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            call["id"] = None
    return out


def anthropic_normalized(message: dict) -> dict:
    out = copy.deepcopy(message)
    out["id"] = None
    for block in out["content"]:
        if "id" in block:
            block["id"] = None
    return out


def openai_chunks(raw: bytes) -> list[dict]:
    """Replayed OpenAI stream -> chunk dicts, each validated by the SDK;
    asserts the stream ends with exactly one [DONE]."""
    evs = events(raw)
    assert evs[-1] == Event(None, "[DONE]")
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    chunks = [json.loads(e.data) for e in evs[:-1]]
    for chunk in chunks:
        assert all(e.event is None for e in evs)
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    return chunks


def anthropic_payloads(raw: bytes) -> list[dict]:
    """Replayed Anthropic stream -> event payloads, each validated by the SDK
    (ping is not part of its RawMessageStreamEvent union)."""
    out = []
    for event in events(raw):
        payload = json.loads(event.data)
        assert event.event == payload["type"], "every event is named after its type"
        if payload["type"] != "ping":
            RAW_EVENT.validate_python(payload)
        out.append(payload)
    return out


def sdk_openai(chunks: list[dict]):
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot


def sdk_anthropic(payloads: list[dict]) -> anthropic.types.Message:
    snapshot, bufs = None, {}
    for payload in payloads:
        if payload["type"] != "ping":
            snapshot = accumulate_event(event=RAW_EVENT.validate_python(payload), current_snapshot=snapshot,
                                        json_bufs=bufs)
    return anthropic.types.Message.model_validate(snapshot.to_dict())


def event_shape(payloads: list[dict]) -> list[str]:
    """Event names with runs of deltas collapsed: the stream's grammar."""
    names: list[str] = []
    for p in payloads:
        name = p["type"] + (":" + p["delta"]["type"] if p["type"] == "content_block_delta" else "")
        if not names or names[-1] != name or p["type"] != "content_block_delta":
            names.append(name)
    return names


def chunk_shape(chunk: dict) -> tuple:
    """Keys of a chunk and of its deltas (values aside): its form."""
    keys = tuple(sorted(k for k in chunk if k != "obfuscation"))
    deltas = tuple(tuple(sorted(c["delta"])) for c in chunk["choices"])
    return keys, deltas


# -- OpenAI against the mock ----------------------------------------------------

OPENAI_CASES = {
    "text": ({}, {}),
    "long text": ({}, LONG),
    "tool call": ({"tools": [OPENAI_TOOL], "tool_choice": "required"}, {}),
    "tool call, long prompt": ({"tools": [OPENAI_TOOL], "tool_choice": "required"}, LONG),
    "n=3": ({"n": 3}, LONG),
    "n=2 tool calls": ({"n": 2, "tools": [OPENAI_TOOL], "tool_choice": "required"}, {}),
    "length cut": ({"max_tokens": 5}, LONG),
    "stop sequence": ({"stop": ["caching"]}, {}),
    "usage details": ({}, USAGE_KNOBS),
    "non-ASCII reply": ({}, {"x-mock-reply": "Grüße  日本\t🎉 ok \"q\" \\ end"}),
}


@pytest.mark.parametrize("body, headers", OPENAI_CASES.values(), ids=OPENAI_CASES.keys())
async def test_openai_stream_accumulates_to_json_and_json_replays_to_stream(upstream, body, headers):
    request = {"model": GPT, "messages": USER, **body}
    answer = json.loads(await post(upstream, "/v1/chat/completions", request, headers))
    raw = await post(upstream, "/v1/chat/completions",
                     {**request, "stream": True, "stream_options": {"include_usage": True}}, headers)

    # (a) the streamed answer, accumulated, is the JSON answer.
    acc = accumulate(OpenAIAccumulator(), raw)
    assert acc.complete
    assert openai_normalized(acc.result()) == openai_normalized(answer)

    # (b) the JSON answer, replayed and re-accumulated, is itself, exactly.
    replayed = replay_openai(answer, include_usage=True, chunk_words=3)
    again = accumulate(OpenAIAccumulator(), replayed)
    assert again.complete
    assert again.result() == answer

    # (c) the SDK accepts every chunk, and its own accumulator agrees.
    chunks = openai_chunks(replayed)
    for chunk in chunks:
        assert (chunk["id"], chunk["created"], chunk["model"], chunk["system_fingerprint"],
                chunk["service_tier"], chunk["object"]) == (
            answer["id"], answer["created"], answer["model"], answer["system_fingerprint"],
            answer["service_tier"], "chat.completion.chunk")
    snapshot = sdk_openai(chunks)
    for choice, sdk_choice in zip(answer["choices"], snapshot.choices, strict=True):
        message = choice["message"]
        texts = [c["choices"][0]["delta"].get("content") or "" for c in chunks
                 if c["choices"] and c["choices"][0]["index"] == choice["index"]]
        assert "".join(texts) == (message["content"] or "")
        assert sdk_choice.message.content == message["content"]
        assert sdk_choice.finish_reason == choice["finish_reason"]
        assert [(t.id, t.function.name, t.function.arguments) for t in sdk_choice.message.tool_calls or ()] == [
            (t["id"], t["function"]["name"], t["function"]["arguments"]) for t in message.get("tool_calls") or ()]
    assert snapshot.usage.model_dump(exclude_unset=True) == answer["usage"]

    # The replay has the real stream's form: same keys, same kinds of deltas.
    mock_chunks = [json.loads(e.data) for e in events(raw)[:-1]]
    assert {chunk_shape(c) for c in chunks} == {chunk_shape(c) for c in mock_chunks}
    # The opening delta is the real one (tool call ids aside).
    opening, mock_opening = chunks[0]["choices"][0]["delta"], mock_chunks[0]["choices"][0]["delta"]
    for call in opening.get("tool_calls", []) + mock_opening.get("tool_calls", []):
        call["id"] = None
    assert json.dumps(opening) == json.dumps(mock_opening)
    assert len(chunks) > 2 + len(answer["choices"])


async def test_openai_replay_without_usage(upstream):
    request = {"model": GPT, "messages": USER}
    answer = json.loads(await post(upstream, "/v1/chat/completions", request, LONG))
    replayed = replay_openai(answer, include_usage=False)
    chunks = openai_chunks(replayed)
    # Without stream_options.include_usage there is no usage key at all.
    assert all("usage" not in c and c["choices"] for c in chunks)
    result = accumulate(OpenAIAccumulator(), replayed).result()
    assert result["usage"] is None
    assert result == {**answer, "usage": None}
    # The streamed answer without a usage chunk accumulates the same way.
    raw = await post(upstream, "/v1/chat/completions", {**request, "stream": True}, LONG)
    acc = accumulate(OpenAIAccumulator(), raw)
    assert openai_normalized(acc.result()) == openai_normalized({**answer, "usage": None})


def test_openai_replay_exact_frames():
    completion = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "one two three four five",
                                             "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        "system_fingerprint": "fp_1",
    }
    head = ('{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-4o",'
            '"system_fingerprint":"fp_1",')

    def frame(delta: str, finish: str = "null") -> bytes:
        return (f'data: {head}"choices":[{{"index":0,"delta":{delta},"logprobs":null,'
                f'"finish_reason":{finish}}}],"usage":null}}\n\n').encode()

    assert replay_openai(completion, include_usage=True, chunk_words=2) == b"".join([
        frame('{"role":"assistant","content":"","refusal":null}'),
        frame('{"content":"one two"}'),
        frame('{"content":" three four"}'),
        frame('{"content":" five"}'),
        frame("{}", '"stop"'),
        f'data: {head}"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}}}\n\n'.encode(),
        b"data: [DONE]\n\n",
    ])


def test_openai_replay_tool_call_frames():
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"query":"a b c"}'}}
    completion = {
        "id": "chatcmpl-2", "object": "chat.completion", "created": 7, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                             "annotations": [], "tool_calls": [call, {**call, "id": "call_2"}]},
                     "logprobs": None, "finish_reason": "tool_calls"}],
        "usage": None,
    }
    deltas = [c["choices"][0]["delta"] for c in openai_chunks(replay_openai(completion, include_usage=False,
                                                                           chunk_words=2))]
    # The first call's head rides on the opening chunk, as OpenAI sends it.
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "search", "arguments": ""}}]}
    assert deltas[1] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"query"'}}]}
    assert {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                            "function": {"name": "search", "arguments": ""}}]} in deltas
    assert deltas[-1] == {}
    assert accumulate(OpenAIAccumulator(), replay_openai(completion, include_usage=False)).result() == completion


def test_openai_refusal_and_logprobs_round_trip():
    logprobs = {"content": None, "refusal": [{"token": "No", "logprob": -0.1, "bytes": [78], "top_logprobs": []}]}
    completion = {
        "id": "chatcmpl-3", "object": "chat.completion", "created": 7, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": "No, I can't help.",
                                             "annotations": []},
                     "logprobs": logprobs, "finish_reason": "stop"}],
        "usage": None,
    }
    chunks = openai_chunks(replay_openai(completion, include_usage=False, chunk_words=1))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": ""}
    assert "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks) == "No, I can't help."
    assert accumulate(OpenAIAccumulator(), replay_openai(completion, include_usage=False)).result() == completion
    assert sdk_openai(chunks).choices[0].message.refusal == "No, I can't help."


# -- Anthropic against the mock -------------------------------------------------

ANTHROPIC_CASES = {
    "text": ({}, {}),
    "long text": ({}, LONG),
    "tool use": ({"tools": [CLAUDE_TOOL], "tool_choice": {"type": "any"}}, {}),
    "tool use, long": ({"tools": [CLAUDE_TOOL], "tool_choice": {"type": "any"}}, LONG),
    "max tokens": ({"max_tokens": 5}, LONG),
    "stop sequence": ({"stop_sequences": ["caching"]}, {}),
    "usage details": ({}, USAGE_KNOBS),
    "non-ASCII reply": ({}, {"x-mock-reply": "Grüße  日本\t🎉 ok \"q\" \\ end"}),
}


@pytest.mark.parametrize("body, headers", ANTHROPIC_CASES.values(), ids=ANTHROPIC_CASES.keys())
async def test_anthropic_stream_accumulates_to_json_and_json_replays_to_stream(upstream, body, headers):
    request = {"model": CLAUDE, "max_tokens": 200, "messages": USER, **body}
    headers = {**ANTHROPIC_HEADERS, **headers}
    answer = json.loads(await post(upstream, "/v1/messages", request, headers))
    raw = await post(upstream, "/v1/messages", {**request, "stream": True}, headers)

    # (a)
    acc = accumulate(AnthropicAccumulator(), raw)
    assert acc.complete
    assert anthropic_normalized(acc.result()) == anthropic_normalized(answer)

    # (b)
    replayed = replay_anthropic(answer, chunk_words=3)
    again = accumulate(AnthropicAccumulator(), replayed)
    assert again.complete
    assert again.result() == answer

    # (c)
    payloads = anthropic_payloads(replayed)
    message = sdk_anthropic(payloads)
    assert message.id == answer["id"]
    assert message.stop_reason == answer["stop_reason"]
    assert message.stop_sequence == answer["stop_sequence"]
    assert message.usage.output_tokens == answer["usage"]["output_tokens"]
    assert message.usage.input_tokens == answer["usage"]["input_tokens"]
    assert message.usage.cache_read_input_tokens == answer["usage"]["cache_read_input_tokens"]
    assert [b.model_dump(exclude_none=True) for b in message.content] == answer["content"]
    texts = [p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta"
             and p["delta"]["type"] == "text_delta"]
    assert "".join(texts) == "".join(b["text"] for b in answer["content"] if b["type"] == "text")

    # The replay follows the service's grammar, event for event.
    mock_payloads = [json.loads(e.data) for e in events(raw)]
    assert event_shape(payloads) == event_shape(mock_payloads)
    assert payloads[0]["message"]["usage"] == mock_payloads[0]["message"]["usage"]
    assert payloads[0]["message"]["usage"]["output_tokens"] == 1
    assert payloads[-2] == {**mock_payloads[-2]}
    if answer["content"] and answer["content"][0]["type"] == "text" and len(answer["content"][0]["text"].split()) > 3:
        assert len(texts) > 1


def test_anthropic_thinking_redacted_and_citations_round_trip():
    citation = {"type": "char_location", "cited_text": "x", "document_index": 0, "document_title": None,
                "start_char_index": 0, "end_char_index": 1, "file_id": None}
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE,
        "content": [
            {"type": "thinking", "thinking": "Let me think  about\nthis carefully.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Cited answer.", "citations": [citation]},
            {"type": "tool_use", "id": "toolu_1", "name": "noargs", "input": {}},
            {"type": "tool_use", "id": "toolu_2", "name": "search", "input": {"q": "ü \"x\"", "n": [1, 2.5, None]}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                  "output_tokens": 50, "service_tier": "standard"},
    }
    replayed = replay_anthropic(message, chunk_words=2)
    payloads = anthropic_payloads(replayed)
    assert accumulate(AnthropicAccumulator(), replayed).result() == message
    kinds = [p["delta"]["type"] for p in payloads if p["type"] == "content_block_delta"]
    assert {"thinking_delta", "signature_delta", "citations_delta", "text_delta", "input_json_delta"} <= set(kinds)
    assert payloads[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert payloads[2] == {"type": "ping"}
    sdk = sdk_anthropic(payloads)
    assert sdk.content[0].thinking == message["content"][0]["thinking"]
    assert sdk.content[0].signature == "sig=="
    assert sdk.content[4].input == message["content"][4]["input"]
    # message_start holds the provisional count, message_delta the total.
    assert payloads[0]["message"]["usage"]["output_tokens"] == 1
    assert payloads[-2]["usage"] == {"input_tokens": 10, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 2, "output_tokens": 50}


def test_anthropic_empty_message_round_trip():
    message = {"id": "msg_2", "type": "message", "role": "assistant", "model": CLAUDE, "content": [],
               "stop_reason": "stop_sequence", "stop_sequence": "STOP",
               "usage": {"input_tokens": 4, "output_tokens": 0}}
    payloads = anthropic_payloads(replay_anthropic(message))
    assert [p["type"] for p in payloads] == ["message_start", "ping", "message_delta", "message_stop"]
    assert accumulate(AnthropicAccumulator(), replay_anthropic(message)).result() == message


# -- truncated and failed streams -----------------------------------------------


@pytest.mark.parametrize("fault", [
    {"x-mock-drop": "mid-stream"},
    {"x-mock-drop": "mid-stream", "x-mock-drop-after": "9"},
    # Everything but the end marker: the answer looks whole, yet is not.
    {"x-mock-drop": "mid-stream", "x-mock-drop-after": "100000"},
    {"x-mock-stream-error": "503"},
    {"x-mock-stream-error": "529", "x-mock-drop-after": "100000"},
], ids=["drop", "drop after 9", "drop before end", "error", "error before end"])
async def test_cut_or_failed_mock_streams_are_incomplete(upstream, fault):
    raw = await post(upstream, "/v1/chat/completions",
                     {"model": GPT, "messages": USER, "stream": True, "stream_options": {"include_usage": True}},
                     {**LONG, **fault})
    acc = accumulate(OpenAIAccumulator(), raw)
    assert not acc.complete and acc.result() is None
    raw = await post(upstream, "/v1/messages",
                     {"model": CLAUDE, "max_tokens": 200, "messages": USER, "stream": True},
                     {**ANTHROPIC_HEADERS, **LONG, **fault})
    acc = accumulate(AnthropicAccumulator(), raw)
    assert not acc.complete and acc.result() is None


def _openai_answer() -> dict:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    return {
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "alpha beta gamma", "refusal": None,
                                     "annotations": []}, "logprobs": None, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                     "tool_calls": [call]}, "logprobs": None, "finish_reason": "tool_calls"},
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def _anthropic_answer() -> dict:
    return {"id": "msg_9", "type": "message", "role": "assistant", "model": CLAUDE,
            "content": [{"type": "text", "text": "alpha beta gamma"},
                        {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": [1, 2]}}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 9}}


@pytest.mark.parametrize("make, replay", [
    (OpenAIAccumulator, lambda: replay_openai(_openai_answer(), include_usage=True, chunk_words=1)),
    (AnthropicAccumulator, lambda: replay_anthropic(_anthropic_answer(), chunk_words=1)),
], ids=["openai", "anthropic"])
def test_every_proper_prefix_is_incomplete(make, replay):
    evs = events(replay())
    for cut in range(len(evs)):
        acc = make()
        for event in evs[:cut]:
            acc.feed(event)
        assert not acc.complete and acc.result() is None, cut
    acc = make()
    for event in evs:
        acc.feed(event)
    assert acc.complete


def test_openai_error_chunk_or_missing_finish_is_incomplete():
    evs = events(replay_openai(_openai_answer(), include_usage=True))
    error = Event(None, json.dumps({"error": {"message": "overloaded", "type": "server_error", "code": None}}))
    # An error anywhere, even followed by what looks like the end.
    for at in (1, len(evs) - 1):
        acc = OpenAIAccumulator()
        for event in evs[:at] + [error] + evs[at:]:
            acc.feed(event)
        assert not acc.complete and acc.result() is None
    # [DONE] with a choice that never finished.
    no_finish = [e for e in evs if '"finish_reason":"tool_calls"' not in e.data]
    acc = OpenAIAccumulator()
    for event in no_finish:
        acc.feed(event)
    assert not acc.complete and acc.result() is None
    # Garbage instead of JSON.
    acc = OpenAIAccumulator()
    for event in [evs[0], Event(None, "{not json"), *evs[1:]]:
        acc.feed(event)
    assert not acc.complete


def test_anthropic_error_event_or_broken_json_is_incomplete():
    evs = events(replay_anthropic(_anthropic_answer(), chunk_words=1))
    error = Event("error", json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}))
    for at in (1, len(evs) - 1):
        acc = AnthropicAccumulator()
        for event in evs[:at] + [error] + evs[at:]:
            acc.feed(event)
        assert not acc.complete and acc.result() is None
    # A tool input whose pieces do not form a JSON object cannot be stored.
    last_piece = max(i for i, e in enumerate(evs) if "input_json_delta" in e.data)
    broken = evs[:last_piece] + evs[last_piece + 1:]
    acc = AnthropicAccumulator()
    for event in broken:
        acc.feed(event)
    assert not acc.complete and acc.result() is None
    # A delta before message_start breaks the protocol.
    acc = AnthropicAccumulator()
    for event in [evs[1], *evs]:
        acc.feed(event)
    assert not acc.complete


def test_result_is_a_copy():
    acc = accumulate(AnthropicAccumulator(), replay_anthropic(_anthropic_answer()))
    acc.result()["content"].clear()
    assert acc.result() == _anthropic_answer()
    acc = accumulate(OpenAIAccumulator(), replay_openai(_openai_answer(), include_usage=True))
    acc.result()["choices"].clear()
    assert acc.result() == _openai_answer()


def test_replay_rejects_bad_chunk_words():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            replay_openai(_openai_answer(), include_usage=False, chunk_words=bad)
        with pytest.raises(ValueError):
            replay_anthropic(_anthropic_answer(), chunk_words=bad)


# -- properties -----------------------------------------------------------------

# Unicode text with whitespace runs of every kind, CR and LF included (JSON
# escapes them, so SSE line splitting never sees them).
WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", " \n \t"])
TEXT = st.lists(st.one_of(st.text(min_size=1, max_size=12), WHITESPACE), max_size=30).map("".join)
NAME = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
JSON_OBJECT = st.dictionaries(st.text(max_size=8), JSON_VALUE, max_size=4)


@st.composite
def openai_completions(draw) -> dict:
    choices = []
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["text", "tools", "text+tools", "refusal"]))
        calls = []
        if "tools" in kind:
            for _ in range(draw(st.integers(1, 3))):
                arguments = draw(st.one_of(JSON_OBJECT.map(json.dumps), st.text(max_size=30)))
                calls.append({"id": "call_" + draw(NAME), "type": "function",
                              "function": {"name": draw(NAME), "arguments": arguments}})
        content = draw(TEXT) if "text" in kind else None
        if kind == "text+tools" and not content:
            # "" with tool calls is folded into null, as the API writes it.
            content = None
        message = {"role": "assistant", "content": content,
                   "refusal": draw(TEXT) if kind == "refusal" else None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))})
    completion = {"id": "chatcmpl-" + draw(NAME), "object": "chat.completion",
                  "created": draw(st.integers(1, 2**31)), "model": draw(NAME), "choices": choices,
                  "usage": draw(st.none() | st.fixed_dictionaries({
                      "prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6),
                      "total_tokens": st.integers(0, 10**6)}))}
    if draw(st.booleans()):
        completion["system_fingerprint"] = draw(st.none() | NAME)
    if draw(st.booleans()):
        completion["service_tier"] = "default"
    return completion


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(openai_completions(), st.integers(1, 6), st.booleans())
def test_openai_replay_round_trips_random_completions(completion, chunk_words, include_usage):
    replayed = replay_openai(completion, include_usage=include_usage, chunk_words=chunk_words)
    chunks = openai_chunks(replayed)
    acc = accumulate(OpenAIAccumulator(), replayed)
    assert acc.complete
    expected = completion if include_usage else {**completion, "usage": None}
    assert acc.result() == expected
    # Every content delta is at most chunk_words words, and they join exactly.
    for choice in completion["choices"]:
        pieces = [c["choices"][0]["delta"].get("content") for c in chunks
                  if c["choices"] and c["choices"][0]["index"] == choice["index"]]
        assert "".join(p for p in pieces if p) == (choice["message"]["content"] or "")
        assert all(len(p.split()) <= chunk_words for p in pieces if p)
    snapshot = sdk_openai(chunks)
    assert [c.message.content for c in snapshot.choices] == [c["message"]["content"] for c in completion["choices"]]


@st.composite
def anthropic_messages(draw) -> dict:
    blocks = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "thinking", "tool_use", "redacted_thinking"]))
        if kind == "text":
            blocks.append({"type": "text", "text": draw(TEXT)})
        elif kind == "thinking":
            blocks.append({"type": "thinking", "thinking": draw(TEXT), "signature": draw(st.text(max_size=20))})
        elif kind == "tool_use":
            blocks.append({"type": "tool_use", "id": "toolu_" + draw(NAME), "name": draw(NAME),
                           "input": draw(JSON_OBJECT)})
        else:
            blocks.append({"type": "redacted_thinking", "data": draw(NAME)})
    stop_reason = draw(st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]))
    return {
        "id": "msg_" + draw(NAME), "type": "message", "role": "assistant", "model": draw(NAME),
        "content": blocks, "stop_reason": stop_reason,
        "stop_sequence": draw(TEXT) if stop_reason == "stop_sequence" else None,
        "usage": {"input_tokens": draw(st.integers(0, 10**6)),
                  "cache_creation_input_tokens": draw(st.none() | st.integers(0, 1000)),
                  "cache_read_input_tokens": draw(st.integers(0, 1000)),
                  "output_tokens": draw(st.integers(0, 10**6)), "service_tier": "standard"},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_messages(), st.integers(1, 6))
def test_anthropic_replay_round_trips_random_messages(message, chunk_words):
    replayed = replay_anthropic(message, chunk_words=chunk_words)
    payloads = anthropic_payloads(replayed)
    acc = accumulate(AnthropicAccumulator(), replayed)
    assert acc.complete
    assert acc.result() == message
    sdk = sdk_anthropic(payloads)
    assert [b.model_dump(exclude_none=True) for b in sdk.content] == message["content"]
    # One block open at a time, indexes counting up from 0.
    starts = [p["index"] for p in payloads if p["type"] == "content_block_start"]
    stops = [p["index"] for p in payloads if p["type"] == "content_block_stop"]
    assert starts == stops == list(range(len(message["content"])))


@given(TEXT, st.integers(1, 5))
def test_split_words_keeps_text_exactly(text, words):
    pieces = split_words(text, words)
    assert "".join(pieces) == text
    assert all(pieces)
    assert all(len(p.split()) <= words for p in pieces)
    # Only the last piece may end in whitespace the next word would have led.
    assert all(not p[-1].isspace() for p in pieces[:-1])


@given(st.integers(1, 64))
def test_events_survive_any_byte_split(size):
    """The replay is ordinary SSE: fed in arbitrary slices it parses to the
    same events, and re-encoding each event gives back the same bytes."""
    raw = replay_anthropic(_anthropic_answer(), chunk_words=1) + replay_openai(_openai_answer(),
                                                                                include_usage=True)
    parser = SSEParser()
    sliced = [e for i in range(0, len(raw), size) for e in parser.feed(raw[i:i + size])]
    assert sliced == events(raw) and not parser.pending
    assert b"".join(encode(e.event, e.data) for e in sliced) == raw


def test_openai_custom_tool_and_legacy_function_call_round_trip():
    """Calls of other tool kinds arrive whole in their first delta; the
    deprecated ``functions`` API streams ``function_call`` pieces."""
    custom = {"id": "call_c", "type": "custom", "custom": {"name": "grammar", "input": "raw text"}}
    completion = {
        "id": "chatcmpl-4", "object": "chat.completion", "created": 7, "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                     "tool_calls": [custom]}, "logprobs": None, "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                     "function_call": {"name": "lookup", "arguments": '{"id": 12345678901}'}},
             "logprobs": None, "finish_reason": "function_call"},
        ],
        "usage": None,
    }
    replayed = replay_openai(completion, include_usage=False, chunk_words=1)
    assert accumulate(OpenAIAccumulator(), replayed).result() == completion
