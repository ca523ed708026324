"""Non-streaming replies: Anthropic message <-> OpenAI chat.completion.

Usage crosses over without double counting. OpenAI's ``prompt_tokens`` is
the whole prompt, so it is Anthropic's input + cache reads + cache writes,
with cache reads as ``prompt_tokens_details.cached_tokens`` and cache writes
as ``prompt_tokens_details.cache_write_tokens``; the reverse subtracts them
again. The ``model`` argument is the name the client asked for, which is what
the client expects to see echoed, whatever the upstream model was.
"""

from __future__ import annotations

from typing import Any

from .common import (
    anthropic_id_from_openai,
    finish_reason_from_stop_reason,
    openai_content_and_calls,
    openai_id_from_anthropic,
    parse_arguments,
    stop_reason_from_finish_reason,
)

__all__ = [
    "anthropic_to_openai_response",
    "openai_to_anthropic_response",
    "openai_usage_from_anthropic",
    "anthropic_usage_from_openai",
]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_usage_from_anthropic(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    prompt = _int(usage.get("input_tokens")) + read + written
    completion = _int(usage.get("output_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": _int(details["thinking_tokens"])}
    return out


def anthropic_usage_from_openai(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = min(_int(details.get("cached_tokens")), prompt)
    written = min(_int(details.get("cache_write_tokens")), prompt - read)
    return {
        "input_tokens": prompt - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": _int(usage.get("completion_tokens")),
    }


def anthropic_to_openai_response(body: dict[str, Any], *, model: str, created: int) -> dict[str, Any]:
    # thinking, redacted_thinking and server-tool blocks have no OpenAI
    # counterpart in a chat.completion message; they are not shown.
    text, calls = openai_content_and_calls(body.get("content"))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": openai_id_from_anthropic(body.get("id"), body),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason_from_stop_reason(body.get("stop_reason")),
        }],
        "usage": openai_usage_from_anthropic(body.get("usage")),
    }


def openai_to_anthropic_response(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    choices = body.get("choices") or [{}]
    # The request translator refuses n > 1, so the first choice is the reply.
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish = choice.get("finish_reason")
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    if message.get("refusal"):
        content.append({"type": "text", "text": message["refusal"]})
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id"),
            "name": fn.get("name"),
            # A reply cut by the length limit may end mid-JSON; the max_tokens
            # stop reason already tells the client the call is incomplete.
            "input": parse_arguments(fn.get("arguments"), param=f"choices[0].message.tool_calls[{i}]",
                                     lenient=finish == "length"),
        })
    stop_reason = "refusal" if message.get("refusal") and finish == "stop" else stop_reason_from_finish_reason(finish)
    return {
        "id": anthropic_id_from_openai(body.get("id"), body),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage_from_openai(body.get("usage")),
    }
