"""The common OpenAI chat body cleared in one walk, before the full checks are asked to name an error.

Most requests are a few messages with a role and string content, and a few scalar options. The
full checks (``limits.check_shape``, then ``validate.openai_fields``: roles, numbers, the schema)
walk the messages three times through generic specs, in the order their errors take precedence.
``plainly_valid`` walks them once, checks the common fields inline and hands every other typed
field to its own spec; it answers True only for a body all those checks pass. Anything else
answers False and the full checks run: they alone raise, so every refusal keeps its status,
message, parameter and precedence.
"""

from __future__ import annotations

from typing import Any

from edge_ext.apis.limits import RequestLimits
from edge_ext.apis.schema import Array, Obj, Spec, openai_style
from edge_ext.apis.validate import MAX_CHOICES, OPENAI_ROLES, OPENAI_SCHEMA
from edge_ext.errors import InvalidRequest

# validate.openai_fields' number fields: (low, high), and the positive integers' upper bounds.
_RANGES = {"temperature": (0, 2), "top_p": (0, 1), "frequency_penalty": (-2, 2), "presence_penalty": (-2, 2)}
_COUNTS = {"max_tokens": None, "max_completion_tokens": None, "n": MAX_CHOICES}
_MESSAGES = OPENAI_SCHEMA.fields["messages"]
assert isinstance(_MESSAGES, Array) and isinstance(_MESSAGES.item, Obj)
_MESSAGE_FIELDS = _MESSAGES.item.fields
_FIELDS = {name: spec for name, spec in OPENAI_SCHEMA.fields.items() if name != "messages"}
_UNBOUNDED = RequestLimits(1 << 62, 1 << 62)


def _conforms(spec: Spec, value: Any) -> bool:
    try:
        spec.check(value, None, openai_style)
    except InvalidRequest:
        return False
    return True


# The message fields a string is valid for (content, name...), and role (checked first): passed
# without a call.
_TAKES_STRING = frozenset({"role", *(name for name, spec in _MESSAGE_FIELDS.items() if _conforms(spec, ""))})


def _items(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _messages_parts(messages: list[Any]) -> int:
    """The content parts of ``messages`` as limits.check_shape counts them, or -1 when a message
    fails a check of validate.openai_fields."""
    parts = 0
    for message in messages:
        if type(message) is not dict:
            return -1
        role = message.get("role")
        if type(role) is not str or role not in OPENAI_ROLES:
            return -1
        for key, value in message.items():
            if value is None or (type(value) is str and key in _TAKES_STRING):
                continue
            spec = _MESSAGE_FIELDS.get(key)
            if spec is None:
                continue  # not read by the edge: passes untouched
            if not _conforms(spec, value):
                return -1
            if key == "tool_calls":
                parts += _items(value)
            elif key == "content" and type(value) is list:
                parts += len(value) + sum(_items(part.get("content")) for part in value if isinstance(part, dict))
    return parts


def _options_valid(body: dict[str, Any]) -> bool:
    for key, value in body.items():
        if value is None:
            continue  # null counts as absent
        bounds = _RANGES.get(key)
        if bounds is not None:
            # type(), not isinstance: a JSON true is no number.
            if (type(value) is not int and type(value) is not float) or not bounds[0] <= value <= bounds[1]:
                return False
            continue
        if key in _COUNTS:
            high = _COUNTS[key]
            if type(value) is not int or value < 1 or (high is not None and value > high):
                return False
            continue
        spec = _FIELDS.get(key)
        if spec is not None and not _conforms(spec, value):
            return False
    return True


def plainly_valid(body: dict[str, Any], limits: RequestLimits | None) -> bool:
    """True: ``body`` passes check_shape (under ``limits``, if any) and openai_fields. False: it
    may not; run them."""
    limits = limits or _UNBOUNDED
    messages = body.get("messages")
    if type(messages) is not list or len(messages) > limits.max_messages:
        return False
    parts = _messages_parts(messages)
    system = body.get("system")
    if parts < 0 or parts + (len(system) if isinstance(system, list) else 0) > limits.max_content_parts:
        return False
    return _options_valid(body)
