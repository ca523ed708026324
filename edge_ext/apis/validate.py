"""Field checks of both chat APIs, before any provider is called: 400 naming the field.

One pass per request, before routing: roles and number ranges, then the JSON type of every field
the edge itself reads (translators, PII policy, cache keys, cost estimates), in either direction
of translation. Unknown fields are not checked and pass through untouched: providers keep adding
them.
"""

from __future__ import annotations

from typing import Any

from edge_ext.apis.schema import (ANY_OBJECT, BOOL, STR, Array, Either, Obj, Style, Tagged, anthropic_style, check,
                                  openai_style)
from edge_ext.errors import InvalidRequest

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ANTHROPIC_ROLES = frozenset({"user", "assistant"})
MAX_CHOICES = 128


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be a number between {low:g} and {high:g}", param=name)


def _positive_int(body: dict[str, Any], name: str, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        limit = f" and at most {high}" if high is not None else ""
        raise InvalidRequest(f"'{name}' must be a positive integer{limit}", param=name)


def _messages(body: dict[str, Any], roles: frozenset[str], style: Style) -> None:
    for index, message in enumerate(body["messages"]):
        where = style(["messages", index])
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where)
        role = message.get("role")
        if not isinstance(role, str) or role not in roles:
            raise InvalidRequest(f"'{where}.role' must be one of {', '.join(sorted(roles))}", param=f"{where}.role")


def _string_or_array(item) -> Either:
    return Either({str: STR, list: Array(item)}, "a string or an array")


# -- OpenAI Chat Completions ---------------------------------------------------------------------
_OPENAI_PART = Tagged({
    "text": Obj({"text": STR}),
    "refusal": Obj({"refusal": STR}),
    "image_url": Obj({"image_url": Obj({"url": STR, "detail": STR})}),
    "input_audio": Obj({"input_audio": Obj({"data": STR, "format": STR})}),
    "file": Obj({"file": Obj({"file_data": STR, "file_id": STR, "filename": STR})}),
})
_OPENAI_TOOL_CALL = Tagged({
    # Arguments are a JSON string on the wire; an object is taken as already parsed.
    "function": Obj({"id": STR, "function": Obj({"name": STR, "arguments": Either({str: STR, dict: ANY_OBJECT}, "a JSON string")})}),
}, default="function")
_OPENAI_FUNCTION = Obj({"name": STR, "description": STR, "parameters": ANY_OBJECT, "strict": BOOL})
OPENAI_SCHEMA = Obj({
    "messages": Array(Obj({
        "content": _string_or_array(_OPENAI_PART),
        "name": STR,
        "refusal": STR,
        "tool_call_id": STR,
        "tool_calls": Array(_OPENAI_TOOL_CALL),
        "function_call": Obj({"name": STR, "arguments": STR}),
    })),
    "stop": _string_or_array(STR),
    "tools": Array(Tagged({"function": Obj({"function": _OPENAI_FUNCTION})}, default="function")),
    "tool_choice": Either({str: STR, dict: Obj({"type": STR, "function": Obj({"name": STR})})}, "a string or an object"),
    "parallel_tool_calls": BOOL,
    "functions": Array(_OPENAI_FUNCTION),
    "function_call": Either({str: STR, dict: Obj({"name": STR})}, "a string or an object"),
    "stream_options": Obj({"include_usage": BOOL}),
    "response_format": ANY_OBJECT,
    "user": STR,
})


def openai_fields(body: dict[str, Any]) -> None:
    _messages(body, OPENAI_ROLES, openai_style)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "presence_penalty", -2, 2)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n", MAX_CHOICES)
    check(body, OPENAI_SCHEMA, openai_style)


# -- Anthropic Messages --------------------------------------------------------------------------
_SOURCE = Tagged({
    "base64": Obj({"media_type": STR, "data": STR}),
    "url": Obj({"url": STR}),
    "text": Obj({"media_type": STR, "data": STR}),
    "file": Obj({"file_id": STR}),
})
_TEXT = Obj({"text": STR, "cache_control": ANY_OBJECT, "citations": Array(ANY_OBJECT)})
_IMAGE = Obj({"source": _SOURCE, "cache_control": ANY_OBJECT})
_DOCUMENT = Obj({"source": _SOURCE, "title": STR, "context": STR, "cache_control": ANY_OBJECT})
_ANTHROPIC_BLOCK = Tagged({
    "text": _TEXT,
    "image": _IMAGE,
    "document": _DOCUMENT,
    "tool_use": Obj({"id": STR, "name": STR, "input": ANY_OBJECT, "cache_control": ANY_OBJECT}),
    "tool_result": Obj({"tool_use_id": STR, "is_error": BOOL, "cache_control": ANY_OBJECT,
                        "content": _string_or_array(Tagged({"text": _TEXT, "image": _IMAGE, "document": _DOCUMENT}))}),
    "thinking": Obj({"thinking": STR, "signature": STR}),
    "redacted_thinking": Obj({"data": STR}),
})
ANTHROPIC_SCHEMA = Obj({
    "messages": Array(Obj({"content": _string_or_array(_ANTHROPIC_BLOCK)})),
    "system": _string_or_array(Tagged({"text": _TEXT})),
    "stop_sequences": Array(STR),
    "tools": Array(Obj({"name": STR, "type": STR, "description": STR, "input_schema": ANY_OBJECT,
                        "cache_control": ANY_OBJECT})),
    "tool_choice": Tagged({"tool": Obj({"name": STR, "disable_parallel_tool_use": BOOL}),
                           "auto": Obj({"disable_parallel_tool_use": BOOL}),
                           "any": Obj({"disable_parallel_tool_use": BOOL})}),
    "metadata": Obj({"user_id": STR}),
    "thinking": ANY_OBJECT,
})


def anthropic_fields(body: dict[str, Any]) -> None:
    _messages(body, _ANTHROPIC_ROLES, anthropic_style)
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _positive_int(body, "top_k")
    check(body, ANTHROPIC_SCHEMA, anthropic_style)
