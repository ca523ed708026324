"""Caps on the shape of one request, checked right after parsing: before the PII scan, the
cache key and translation walk it again.

What a request costs the processor grows with its number of pieces as much as with its size:
230,000 one-word messages fit in 8 MB, and the passes over them (validation, PII scan, cache
key, translation) took one worker's event loop over a second in all. The byte limit
(``processor.max_body_bytes``) cannot bound that; these caps do. Over a cap: 413 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_ext.errors import BodyTooLarge


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_messages: int
    # Items of content arrays (a tool_result's own content too), tool_calls and system blocks.
    max_content_parts: int

    @classmethod
    def of(cls, processor: Any) -> "RequestLimits":
        return cls(processor.max_messages, processor.max_content_parts)


def _items(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _part_counts(body: dict[str, Any], messages: list[Any]):
    yield _items(body.get("system"))
    for message in messages:
        if not isinstance(message, dict):
            continue
        yield _items(message.get("tool_calls"))
        content = message.get("content")
        if isinstance(content, list):
            yield len(content) + sum(_items(part.get("content")) for part in content if isinstance(part, dict))


def check_shape(body: dict[str, Any], limits: RequestLimits) -> None:
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    if len(messages) > limits.max_messages:
        raise BodyTooLarge(f"'messages' has {len(messages)} entries; the limit is {limits.max_messages} "
                           "(processor.max_messages)", param="messages")
    parts = 0
    for count in _part_counts(body, messages):
        parts += count
        if parts > limits.max_content_parts:
            raise BodyTooLarge(f"the request has more than {limits.max_content_parts} content parts "
                               "(processor.max_content_parts)", param="messages")
