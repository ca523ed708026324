"""Request translation, both directions, as tables of input -> exact output."""

from __future__ import annotations

import pytest

from edge_ext.translate import (
    DROPPED_OPENAI_PARAMS,
    TranslationError,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
SEARCH_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
OAI_TOOL = {"type": "function", "function": {"name": "search", "description": "Search the web",
                                             "parameters": SEARCH_SCHEMA}}
ANT_TOOL = {"name": "search", "description": "Search the web", "input_schema": SEARCH_SCHEMA}


def to_anthropic(body: dict, default_max_tokens: int = 1024) -> dict:
    return openai_to_anthropic_request(body, model="claude-haiku-4-5", default_max_tokens=default_max_tokens)


def to_openai(body: dict) -> dict:
    return anthropic_to_openai_request(body, model="gpt-4o")


def user(content) -> dict:
    return {"role": "user", "content": content}


O2A_CASES = {
    "plain text, default max_tokens": (
        {"model": "gpt-4o", "messages": [user("hi")]},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024},
    ),
    "system and developer messages hoisted": (
        {"model": "x", "messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                                    user("hi")]},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024,
         "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "No emoji."}]},
    ),
    "single system string stays a string": (
        {"model": "x", "messages": [{"role": "system", "content": "Be brief."}, user("hi")]},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024, "system": "Be brief."},
    ),
    "multipart text + data URL image + http image": (
        {"model": "x", "messages": [user([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ])]},
        {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [user([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ])]},
    ),
    "sampling params: temperature clamped, stop string, max_completion_tokens wins": (
        {"model": "x", "messages": [user("hi")], "temperature": 1.7, "top_p": 0.9, "stop": "END",
         "max_tokens": 10, "max_completion_tokens": 20, "stream": True, "user": "u-42",
         "stream_options": {"include_usage": True}, "seed": 1, "frequency_penalty": 0.5,
         "response_format": {"type": "text"}, "logprobs": False, "n": 1},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 20, "temperature": 1.0,
         "top_p": 0.9, "stop_sequences": ["END"], "stream": True, "metadata": {"user_id": "u-42"}},
    ),
    "temperature within range kept, stop list, max_tokens": (
        {"model": "x", "messages": [user("hi")], "temperature": 0.7, "stop": ["a", "b"], "max_tokens": 5,
         "stream": False},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 5, "temperature": 0.7,
         "stop_sequences": ["a", "b"]},
    ),
    "empty stop sequences dropped": (
        {"model": "x", "messages": [user("hi")], "stop": ["", "x"]},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024, "stop_sequences": ["x"]},
    ),
    "tools, tool_choice required, no parallel calls": (
        {"model": "x", "messages": [user("hi")], "tools": [OAI_TOOL], "tool_choice": "required",
         "parallel_tool_calls": False},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024, "tools": [ANT_TOOL],
         "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    "named tool choice, tool without parameters": (
        {"model": "x", "messages": [user("hi")],
         "tools": [{"type": "function", "function": {"name": "now"}}],
         "tool_choice": {"type": "function", "function": {"name": "now"}}},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024,
         "tools": [{"name": "now", "input_schema": {"type": "object", "properties": {}}}],
         "tool_choice": {"type": "tool", "name": "now"}},
    ),
    "tool_choice none and auto": (
        {"model": "x", "messages": [user("hi")], "tools": [OAI_TOOL], "tool_choice": "none"},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024, "tools": [ANT_TOOL],
         "tool_choice": {"type": "none"}},
    ),
    "tool_choice without tools is dropped": (
        {"model": "x", "messages": [user("hi")], "tool_choice": "auto"},
        {"model": "claude-haiku-4-5", "messages": [user("hi")], "max_tokens": 1024},
    ),
    "tool calls and merged tool results": (
        {"model": "x", "messages": [
            user("weather in Paris and Rome?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            user("and tomorrow?"),
        ]},
        {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [
            user("weather in Paris and Rome?"),
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "w", "input": {}},
            ]},
            user([
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"type": "text", "text": "and tomorrow?"},
            ]),
        ]},
    ),
    "consecutive user turns merged, empty text dropped": (
        {"model": "x", "messages": [user("a"), user([{"type": "text", "text": ""}, {"type": "text", "text": "b"}]),
                                    {"role": "assistant", "content": None, "refusal": "I can't."}]},
        {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [
            user([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
            {"role": "assistant", "content": "I can't."},
        ]},
    ),
    "inline PDF file": (
        {"model": "x", "messages": [user([{"type": "file", "file": {
            "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}])]},
        {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": "JVBERi0="}}]}]},
    ),
}


@pytest.mark.parametrize(("body", "expected"), O2A_CASES.values(), ids=O2A_CASES.keys())
def test_openai_to_anthropic(body: dict, expected: dict) -> None:
    assert to_anthropic(body) == expected


def test_default_max_tokens_is_the_callers() -> None:
    assert to_anthropic({"messages": [user("hi")]}, default_max_tokens=77)["max_tokens"] == 77


def test_dropped_params_are_documented_and_absent() -> None:
    body = {"messages": [user("hi")], **{name: 1 for name in DROPPED_OPENAI_PARAMS}}
    out = to_anthropic(body)
    assert set(out) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [user("hi")], "n": 2}, "n"),
        ({"messages": [user([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])]},
         "messages[0].content[0]"),
        ({"messages": [user([{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}])]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"messages": [user("hi")], "functions": [{"name": "f"}]}, "functions"),
        ({"messages": [user("hi")], "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ],
)
def test_untranslatable_openai_requests_raise(body: dict, param: str) -> None:
    with pytest.raises(TranslationError) as info:
        to_anthropic(body)
    assert info.value.param == param


A2O_CASES = {
    "system string, stream adds include_usage": (
        {"model": "claude", "max_tokens": 100, "system": "Be brief.", "messages": [user("hi")], "stream": True,
         "temperature": 0.3, "top_p": 0.8, "top_k": 40, "stop_sequences": ["END"],
         "metadata": {"user_id": "u-1"}, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}, user("hi")],
         "max_tokens": 100, "temperature": 0.3, "top_p": 0.8, "stop": ["END"], "stream": True,
         "stream_options": {"include_usage": True}, "user": "u-1"},
    ),
    "system blocks, images": (
        {"max_tokens": 5, "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B",
                                                                       "cache_control": {"type": "ephemeral"}}],
         "messages": [user([
             {"type": "text", "text": "What is this?"},
             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
             {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
         ])]},
        {"model": "gpt-4o", "max_tokens": 5, "messages": [
            {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
            user([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]),
        ]},
    ),
    "tool use and tool results": (
        {"max_tokens": 5, "tools": [ANT_TOOL], "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
         "messages": [
             user("find cats"),
             {"role": "assistant", "content": [
                 {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                 {"type": "text", "text": "Searching."},
                 {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"query": "cats"}},
             ]},
             user([
                 {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 cats", "is_error": False},
                 {"type": "text", "text": "thanks"},
             ]),
         ]},
        {"model": "gpt-4o", "max_tokens": 5, "tools": [OAI_TOOL], "tool_choice": "required",
         "parallel_tool_calls": False, "messages": [
             user("find cats"),
             {"role": "assistant", "content": "Searching.", "tool_calls": [
                 {"id": "toolu_1", "type": "function",
                  "function": {"name": "search", "arguments": '{"query":"cats"}'}}]},
             {"role": "tool", "tool_call_id": "toolu_1", "content": "3 cats"},
             user([{"type": "text", "text": "thanks"}]),
         ]},
    ),
    "named tool choice, tool-only assistant turn, block tool result": (
        {"max_tokens": 5, "tools": [ANT_TOOL], "tool_choice": {"type": "tool", "name": "search"},
         "messages": [
             {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "search", "input": {}}]},
             user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ok"}]}]),
         ]},
        {"model": "gpt-4o", "max_tokens": 5, "tools": [OAI_TOOL],
         "tool_choice": {"type": "function", "function": {"name": "search"}}, "messages": [
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "t", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
             {"role": "tool", "tool_call_id": "t", "content": [{"type": "text", "text": "ok"}]},
         ]},
    ),
}


@pytest.mark.parametrize(("body", "expected"), A2O_CASES.values(), ids=A2O_CASES.keys())
def test_anthropic_to_openai(body: dict, expected: dict) -> None:
    assert to_openai(body) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": [user("hi")], "tools": [{"type": "web_search_20250305", "name": "w"}]},
         "tools.0"),
        ({"max_tokens": 5, "messages": [user("hi")], "stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": 5, "messages": [user([{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x"}}]}])]}, "messages.0.content.0"),
    ],
)
def test_untranslatable_anthropic_requests_raise(body: dict, param: str) -> None:
    with pytest.raises(TranslationError) as info:
        to_openai(body)
    assert info.value.param == param


def test_openai_conversation_round_trips_through_anthropic() -> None:
    """OpenAI -> Anthropic -> OpenAI keeps every turn, tool call and result."""
    original = {
        "model": "gpt-4o",
        "max_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "tools": [OAI_TOOL],
        "tool_choice": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            user([{"type": "text", "text": "What is this?"},
                  {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]),
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "search", "arguments": '{"query":"png"}'}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "a 1x1 image"},
        ],
    }
    back = to_openai(to_anthropic(original))
    assert back == {**original, "model": "gpt-4o"}


def test_anthropic_conversation_round_trips_through_openai() -> None:
    original = {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "system": "Be brief.",
        "tools": [ANT_TOOL],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["END"],
        "messages": [
            user("find cats"),
            {"role": "assistant", "content": [
                {"type": "text", "text": "Searching."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"query": "cats"}}]},
            user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 cats"},
                  {"type": "text", "text": "thanks"}]),
        ],
    }
    back = openai_to_anthropic_request(to_openai(original), model="claude-haiku-4-5", default_max_tokens=1)
    assert back == original
