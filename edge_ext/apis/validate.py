"""Field checks both chat APIs share, before any provider is called: 400 naming the field.

Unknown fields are not checked and pass through untouched: providers keep adding them.
"""

from __future__ import annotations

from typing import Any

from edge_ext.errors import InvalidRequest

_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
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


def _messages(body: dict[str, Any], roles: frozenset[str]) -> None:
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{index}]' must be an object", param=f"messages[{index}]")
        role = message.get("role")
        if role not in roles:
            raise InvalidRequest(
                f"'messages[{index}].role' must be one of {', '.join(sorted(roles))}", param=f"messages[{index}].role")


def openai_fields(body: dict[str, Any]) -> None:
    _messages(body, _OPENAI_ROLES)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "presence_penalty", -2, 2)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n", MAX_CHOICES)


def anthropic_fields(body: dict[str, Any]) -> None:
    _messages(body, _ANTHROPIC_ROLES)
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _positive_int(body, "top_k")
