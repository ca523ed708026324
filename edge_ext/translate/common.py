"""Vocabulary shared by every translator: ids, stop reasons, assistant content, JSON framing.

Kept in one place so the request, response and stream translators cannot
disagree on, say, what ``max_tokens`` maps to or how an id is derived.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

from ..sse import Event, encode

__all__ = [
    "TranslationError",
    "dumps",
    "sse_data",
    "sse_event",
    "DONE",
    "openai_id_from_anthropic",
    "anthropic_id_from_openai",
    "tool_use_id",
    "finish_reason_from_stop_reason",
    "stop_reason_from_finish_reason",
    "parse_arguments",
]


class TranslationError(ValueError):
    """The request uses something the other API cannot express.

    Callers answer it as a 400 ``invalid_request_error`` in the client's
    dialect; ``param`` names the offending field the way the client spelled it.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def event_json(event: Event) -> dict[str, Any] | None:
    """The JSON object an SSE event carries; None for anything else."""
    try:
        payload = json.loads(event.data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class EndsOnce:
    """The end of a stream translator, the same for every pair of APIs: once the stream has ended
    (its last event or an error sent) nothing more is said, and a stream cut before that, by a
    reset or by a close in good order alike, ends in the client API's error, never in a clean end
    the client would take for a whole reply."""

    def __init__(self) -> None:
        self.done = False

    def _truncated(self) -> bytes:
        """The client API's error event for a stream cut short."""
        raise NotImplementedError

    def finish(self, clean: bool) -> bytes:
        if self.done:
            return b""
        return self._fail(self._truncated())

    def _fail(self, frame: bytes) -> bytes:
        """``frame`` as the stream's last word."""
        self.done = True
        return frame


def each_message(body: dict[str, Any], where: str) -> Iterator[tuple[str, Any, Any]]:
    """A request's messages as (where, role, message): ``where`` formats a message's index the way
    the client API names a parameter (OpenAI ``messages[{}]``, Anthropic ``messages.{}``); the role
    is None for a message that is not an object."""
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise TranslationError("messages: expected an array of messages", "messages")
    for i, message in enumerate(raw):
        yield where.format(i), message.get("role") if isinstance(message, dict) else None, message


def dumps(value: Any) -> str:
    """Compact UTF-8 JSON, as both providers write it."""
    return _encoder.encode(value)


def openai_content_and_calls(blocks: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """An Anthropic assistant turn's text and ``tool_use`` blocks as an OpenAI
    message's ``content`` and ``tool_calls``; other blocks are skipped."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": dumps(block.get("input") or {})}})
    # Text blocks of one turn are contiguous output, hence joined with "".
    return ("".join(texts) if texts else None), calls


def sse_data(payload: Any) -> bytes:
    # JSON escapes CR and LF inside strings, so one data line always suffices.
    return b"data: " + dumps(payload).encode("utf-8") + b"\n\n"


def sse_event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode("ascii") + b"\ndata: " + dumps(payload).encode("utf-8") + b"\n\n"


DONE = encode(None, "[DONE]")

_OPENAI_PREFIX = "chatcmpl-"
_ANTHROPIC_PREFIX = "msg_"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(dumps(parts).encode("utf-8")).hexdigest()[:24]


def openai_id_from_anthropic(message_id: Any, fallback: Any = None) -> str:
    """``msg_X`` <-> ``chatcmpl-X``: deterministic both ways, so a client can
    correlate a translated reply with upstream logs, and ids round-trip."""
    if isinstance(message_id, str) and message_id:
        return _OPENAI_PREFIX + message_id.removeprefix(_ANTHROPIC_PREFIX)
    return _OPENAI_PREFIX + _digest(fallback)


def anthropic_id_from_openai(completion_id: Any, fallback: Any = None) -> str:
    if isinstance(completion_id, str) and completion_id:
        return _ANTHROPIC_PREFIX + completion_id.removeprefix(_OPENAI_PREFIX)
    return _ANTHROPIC_PREFIX + _digest(fallback)


def tool_use_id(message_id: str, index: int) -> str:
    """An id for a tool call that arrived without one (some OpenAI-compatible
    servers omit it); Anthropic requires every tool_use block to have one."""
    return "toolu_" + _digest(message_id, index)


# Anthropic stop_reason -> OpenAI finish_reason. pause_turn (a server tool
# loop paused) ends the turn normally from the client's point of view; a full
# context window is, like max_tokens, a length limit.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

# OpenAI does not say which stop sequence matched, so "stop" maps to end_turn.
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason_from_stop_reason(stop_reason: Any) -> str:
    return _FINISH.get(stop_reason, "stop")


def stop_reason_from_finish_reason(finish_reason: Any) -> str:
    return _STOP.get(finish_reason, "end_turn")


def parse_arguments(arguments: Any, *, param: str, lenient: bool = False) -> dict[str, Any]:
    """OpenAI carries tool arguments as a JSON *string*; Anthropic wants an
    object. An empty string is a call without arguments. ``lenient`` (for a
    reply cut by the length limit, whose JSON is legitimately incomplete)
    yields ``{}`` instead of raising."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    if lenient:
        return {}
    raise TranslationError(f"{param}: function arguments must be a JSON object", param)
