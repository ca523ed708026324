"""Replay a stored JSON answer as the SSE stream the same API would send.

The response cache stores the non-streamed shape (see ``accumulate``); a
``stream: true`` request that hits it must still get a stream, event for
event in the provider's own format, so that every SDK's stream parser and
accumulator folds it back into exactly the stored answer.

Text is cut into pieces of ``chunk_words`` words, each piece keeping the
whitespace *before* its first word, as BPE tokens carry their leading space;
the pieces join back to the exact text, whitespace runs included. Tool
arguments (JSON text, which has no words) are cut every ``4 * chunk_words``
characters, about as many tokens as a text piece; a cut may fall inside a
string or an escape, as the providers' own do, since clients must join the
pieces before parsing.

Pure: returns the whole stream as bytes; pacing is the caller's business.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from .accumulate import TOOL_INPUT_BLOCKS
from .common import DONE, dumps, sse_data, sse_event

__all__ = ["replay_openai", "replay_anthropic", "split_words"]

# About four characters make a token, so a JSON piece of this many
# characters per word weighs roughly as much as a text piece.
CHARS_PER_WORD = 4
# message_start announces a provisional output count; the service sends a
# small non-zero figure there and the cumulative total in message_delta.
START_OUTPUT_TOKENS = 1

_WORD = re.compile(r"\S+")


def _check(chunk_words: int) -> None:
    if not isinstance(chunk_words, int) or isinstance(chunk_words, bool) or chunk_words < 1:
        raise ValueError(f"chunk_words must be a positive integer, got {chunk_words!r}")


def split_words(text: str, words: int) -> list[str]:
    """``text`` in pieces of ``words`` words whose concatenation is ``text``.
    Leading whitespace stays with the first piece, trailing with the last;
    an empty text has no pieces."""
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    ends = [match.end() for match in _WORD.finditer(text)]
    for end in ends[words - 1::words]:
        if end >= ends[-1]:
            # Whitespace after the last word goes with it, not alone.
            break
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def _slices(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# -- OpenAI ---------------------------------------------------------------------


def _choice_deltas(choice: dict[str, Any], chunk_words: int) -> Iterator[dict[str, Any]]:
    """The ``choices[]`` items of one choice, in stream order: the opening
    delta, content or refusal pieces, tool calls, then the finish item."""
    index = choice.get("index", 0)
    message = choice.get("message") or {}
    content = message.get("content")
    refusal = message.get("refusal")
    tool_calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    legacy = message.get("function_call")
    arg_size = chunk_words * CHARS_PER_WORD

    def item(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

    # The opening delta carries the role. A text answer opens with
    # ``content: ""``; a tool call or a refusal with ``content: null`` (and a
    # refusal with ``refusal: ""``), the way the JSON answer tells them apart.
    opening: dict[str, Any] = {
        "role": message.get("role") or "assistant",
        "content": "" if isinstance(content, str) else None,
        "refusal": "" if isinstance(refusal, str) else None,
    }
    calls = list(enumerate(tool_calls))
    if content is None and calls:
        # OpenAI puts the head of the first tool call in the opening chunk.
        _, first = calls[0]
        opening = {"role": opening["role"], "content": None,
                   "tool_calls": [_tool_call_head(0, first)], "refusal": opening["refusal"]}
    yield item(opening)
    for piece in split_words(content or "", chunk_words):
        yield item({"content": piece})
    for piece in split_words(refusal or "", chunk_words):
        yield item({"refusal": piece})
    if message.get("annotations"):
        yield item({"annotations": message["annotations"]})
    for position, call in calls:
        if not (position == 0 and content is None):
            yield item({"tool_calls": [_tool_call_head(position, call)]})
        function = call.get("function")
        if isinstance(function, dict):
            for piece in _slices(function.get("arguments") or "", arg_size):
                yield item({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
    if isinstance(legacy, dict):
        yield item({"function_call": {"name": legacy.get("name") or "", "arguments": ""}})
        for piece in _slices(legacy.get("arguments") or "", arg_size):
            yield item({"function_call": {"arguments": piece}})
    # Log probabilities belong to the tokens of each chunk; the stored answer
    # has them as one list, which the closing chunk carries whole so that
    # concatenation restores it.
    yield item({}, choice.get("finish_reason") or "stop", choice.get("logprobs"))


def _tool_call_head(position: int, call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's first delta: index, id, type, name and empty arguments
    for a function; other tool kinds (no argument stream) arrive whole."""
    kind = call.get("type") or "function"
    head: dict[str, Any] = {"index": position, "id": call.get("id"), "type": kind}
    function = call.get("function")
    if isinstance(function, dict):
        head["function"] = {"name": function.get("name") or "", "arguments": ""}
    for key, value in call.items():
        if key not in ("id", "type", "function", "index"):
            head[key] = value
    return head


def replay_openai(completion: dict[str, Any], *, include_usage: bool, chunk_words: int = 8) -> bytes:
    """A ``chat.completion`` object as a ``chat.completion.chunk`` stream.

    Every chunk repeats id, created, model (and service_tier and
    system_fingerprint when the answer has them). With ``include_usage``
    every chunk carries ``"usage": null`` and a final chunk with ``choices:
    []`` carries the usage, as ``stream_options.include_usage`` asks; the
    stream ends with ``data: [DONE]``. Choices of an ``n > 1`` answer are
    interleaved, as they are generated side by side. OpenAI's random
    ``obfuscation`` padding is left out: it only hides token lengths from an
    observer of a live generation, and clients ignore it.
    """
    _check(chunk_words)
    envelope: dict[str, Any] = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    for key in ("service_tier", "system_fingerprint"):
        if key in completion:
            envelope[key] = completion[key]

    def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        body = dict(envelope, choices=choices)
        if include_usage:
            body["usage"] = usage
        return sse_data(body)

    out = bytearray()
    streams = [_choice_deltas(c, chunk_words) for c in completion.get("choices") or () if isinstance(c, dict)]
    while streams:
        # One item per choice in turn, dropping each choice once finished.
        alive = []
        for stream in streams:
            item = next(stream, None)
            if item is not None:
                out += chunk([item])
                alive.append(stream)
        streams = alive
    if include_usage and completion.get("usage") is not None:
        out += chunk([], completion["usage"])
    out += DONE
    return bytes(out)


# -- Anthropic ------------------------------------------------------------------

# Usage fields message_delta repeats as cumulative totals; the rest
# (cache_creation breakdown, service_tier, ...) only message_start carries.
_DELTA_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens",
                "server_tool_use", "output_tokens_details")


def _block_events(index: int, block: dict[str, Any], chunk_words: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(content_block_start payload, its deltas) for one stored block."""
    kind = block.get("type")
    deltas: list[dict[str, Any]] = []
    if kind == "text":
        # Text opens empty; citations, when enabled, open as [] and come one
        # per citations_delta.
        start = dict(block, text="")
        citations = block.get("citations")
        if isinstance(citations, list):
            start["citations"] = []
            deltas += [{"type": "citations_delta", "citation": c} for c in citations]
        deltas += [{"type": "text_delta", "text": p} for p in split_words(block.get("text") or "", chunk_words)]
    elif kind == "thinking":
        start = dict(block, thinking="", signature="")
        deltas += [{"type": "thinking_delta", "thinking": p}
                   for p in split_words(block.get("thinking") or "", chunk_words)]
        if block.get("signature"):
            # The signature comes whole, last, just before the block stops.
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind in TOOL_INPUT_BLOCKS and isinstance(block.get("input"), dict):
        start = dict(block, input={})
        text = dumps(block["input"]) if block["input"] else ""
        # The service opens every tool input with an empty partial_json.
        pieces = [""] + _slices(text, chunk_words * CHARS_PER_WORD)
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    else:
        # redacted_thinking, server tool results and the like arrive whole in
        # their content_block_start.
        start = block
    events = [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    return {"type": "content_block_start", "index": index, "content_block": start}, events


def replay_anthropic(message: dict[str, Any], *, chunk_words: int = 8) -> bytes:
    """A ``message`` object as a Messages API event stream: ``message_start``
    (empty content, no stop reason, provisional output count), then per
    block ``content_block_start``, deltas and ``content_block_stop`` (with a
    ``ping`` after the first start, where the service sends one), then
    ``message_delta`` (stop reason, stop sequence, final usage) and
    ``message_stop``."""
    _check(chunk_words)
    usage = dict(message.get("usage") or {})
    final_output = usage.get("output_tokens") or 0
    start_usage = dict(usage, output_tokens=min(START_OUTPUT_TOKENS, final_output))
    start = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
    if "stop_details" in message:
        start["stop_details"] = None

    out = bytearray(sse_event("message_start", {"type": "message_start", "message": start}))
    blocks = [b for b in message.get("content") or () if isinstance(b, dict)]
    for index, block in enumerate(blocks):
        opening, deltas = _block_events(index, block, chunk_words)
        out += sse_event("content_block_start", opening)
        if index == 0:
            out += sse_event("ping", {"type": "ping"})
        for delta in deltas:
            out += sse_event("content_block_delta", delta)
        out += sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
    if not blocks:
        out += sse_event("ping", {"type": "ping"})

    delta: dict[str, Any] = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    if message.get("stop_details") is not None:
        delta["stop_details"] = message["stop_details"]
    final_usage = {k: usage[k] for k in _DELTA_USAGE if usage.get(k) is not None}
    final_usage["output_tokens"] = final_output
    out += sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage})
    out += sse_event("message_stop", {"type": "message_stop"})
    return bytes(out)
