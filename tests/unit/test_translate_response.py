"""Non-streaming reply translation, validated by the official SDK types."""

from __future__ import annotations

from dataclasses import replace

import anthropic.types
import openai.types.chat
import pytest

from edge_ext.translate import TranslationError, anthropic_to_openai_response, openai_to_anthropic_response
from edge_ext.usage import from_anthropic, from_openai

CREATED = 1_760_000_000


def claude_message(content: list, stop_reason: str = "end_turn", usage: dict | None = None) -> dict:
    return {
        "id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                           "output_tokens": 5},
    }


def completion(message: dict, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-XYZ", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


A2O_FINISH = [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
]


@pytest.mark.parametrize(("stop_reason", "finish_reason"), A2O_FINISH)
def test_anthropic_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    out = anthropic_to_openai_response(claude_message([{"type": "text", "text": "x"}], stop_reason),
                                       model="gpt-4o", created=CREATED)
    assert out["choices"][0]["finish_reason"] == finish_reason


def test_anthropic_text_tool_use_and_cache_usage() -> None:
    body = claude_message(
        [
            {"type": "thinking", "thinking": "let me think", "signature": "sig"},
            {"type": "text", "text": "Let me "},
            {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "été"}},
        ],
        "tool_use",
        {"input_tokens": 25, "cache_creation_input_tokens": 400, "cache_read_input_tokens": 1000,
         "output_tokens": 15},
    )
    out = anthropic_to_openai_response(body, model="my-alias", created=CREATED)
    assert out == {
        "id": "chatcmpl-01ABC",
        "object": "chat.completion",
        "created": CREATED,
        "model": "my-alias",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Let me check.", "refusal": None, "annotations": [],
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                                        "function": {"name": "search", "arguments": '{"q":"été"}'}}]},
            "logprobs": None,
            "finish_reason": "tool_calls",
        }],
        "usage": {"prompt_tokens": 1425, "completion_tokens": 15, "total_tokens": 1440,
                  "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 400}},
    }
    openai.types.chat.ChatCompletion.model_validate(out)
    # Accounting gives the same figures on either side of the translation.
    assert from_openai(out) == from_anthropic(body)


def test_anthropic_without_text_has_null_content() -> None:
    out = anthropic_to_openai_response(claude_message([]), model="m", created=CREATED)
    assert out["choices"][0]["message"]["content"] is None
    assert "tool_calls" not in out["choices"][0]["message"]
    openai.types.chat.ChatCompletion.model_validate(out)


O2A_STOP = [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
            ("function_call", "tool_use"), ("content_filter", "refusal")]


@pytest.mark.parametrize(("finish_reason", "stop_reason"), O2A_STOP)
def test_openai_finish_reasons(finish_reason: str, stop_reason: str) -> None:
    out = openai_to_anthropic_response(completion({"content": "x"}, finish_reason), model="claude")
    assert out["stop_reason"] == stop_reason


def test_openai_text_tool_calls_and_cached_usage() -> None:
    body = completion(
        {"content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        ]},
        "tool_calls",
        {"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
         "prompt_tokens_details": {"cached_tokens": 100},
         "completion_tokens_details": {"reasoning_tokens": 30}},
    )
    out = openai_to_anthropic_response(body, model="claude-alias")
    assert out == {
        "id": "msg_XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "search", "input": {"q": "x"}},
            {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
                  "output_tokens": 50},
    }
    anthropic.types.Message.model_validate(out)
    # Same accounting either side, except the reasoning breakdown, which
    # Anthropic's usage object has no field for.
    assert from_anthropic(out) == replace(from_openai(body), reasoning_tokens=0)


def test_openai_refusal_becomes_text_and_refusal_stop() -> None:
    body = completion({"content": None, "refusal": "I can't help with that."})
    out = openai_to_anthropic_response(body, model="c")
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"
    anthropic.types.Message.model_validate(out)


def test_openai_truncated_tool_arguments() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"q": "unfinis'}}
    # Cut by the length limit: the JSON is legitimately incomplete.
    out = openai_to_anthropic_response(completion({"content": None, "tool_calls": [call]}, "length"), model="c")
    assert out["content"][0]["input"] == {} and out["stop_reason"] == "max_tokens"
    # Otherwise the upstream reply is malformed and says so.
    with pytest.raises(TranslationError):
        openai_to_anthropic_response(completion({"content": None, "tool_calls": [call]}, "tool_calls"), model="c")


def test_ids_round_trip() -> None:
    claude = claude_message([{"type": "text", "text": "hi"}])
    there = anthropic_to_openai_response(claude, model="m", created=CREATED)
    back = openai_to_anthropic_response(there, model="claude-haiku-4-5")
    assert back["id"] == claude["id"]
    assert back["content"] == claude["content"]
    assert back["usage"] == claude["usage"]
