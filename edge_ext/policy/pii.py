"""Prompt PII policy: off, redact (replace before the provider sees it) or block (400)."""

from __future__ import annotations

import dataclasses
from typing import Any

from edge_ext.errors import PiiBlocked
from edge_ext.providers.base import ChatRequest
from edge_ext.redact import detect, redact


def _texts(request: ChatRequest):
    """(container, key) of every prompt text: message contents, text parts, Anthropic's system."""
    body = request.body
    if isinstance(body.get("system"), str):
        yield body, "system"
    elif isinstance(body.get("system"), list):
        yield from ((block, "text") for block in body["system"] if isinstance(block, dict) and isinstance(block.get("text"), str))
    for message in body.get("messages", ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            yield from ((part, "text") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))


def guard_prompt(request: ChatRequest, policy: str) -> ChatRequest:
    if policy == "off":
        return request
    if policy == "block":
        found: list[str] = []
        for container, key in _texts(request):
            found += [k for k in detect(container[key]) if k not in found]
        if found:
            # Name the kinds, never the values.
            raise PiiBlocked(f"the prompt contains personal data ({', '.join(found)}); remove it and retry", param="messages")
        return request
    body: Any = _copy(request.body)
    changed = False
    for container, key in _texts(dataclasses.replace(request, body=body)):
        text, kinds = redact(container[key])
        if kinds:
            container[key], changed = text, True
    return dataclasses.replace(request, body=body, rewritten=True) if changed else request


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
