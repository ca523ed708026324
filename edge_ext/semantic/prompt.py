"""What a semantic lookup compares: the conversation as text, and the exact partition around it.

Only the conversation the answer depends on (system prompt and turns) is embedded and compared
by similarity. Everything else that changes the answer (model, sampling parameters, tools,
response format, n, the API shape of the stored answer, the betas that reach the provider) is an
exact partition key, with the caller's cache namespace (tenant or credential): a semantic hit
only ever comes from an entry of the same partition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from edge_ext.cache.key import DELIVERY_ONLY

# The conversation: compared by meaning. Every other field of the body is the partition.
_CONVERSATION = frozenset({"messages", "system"})


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # what is embedded, and what the guard compares
    partition: str  # hex digest; equal partitions are the only ones compared


def partition_key(namespace: str, api: str, body: dict[str, Any], variant: tuple[tuple[str, str], ...] = ()) -> str:
    rest = {k: v for k, v in body.items() if k not in _CONVERSATION and k not in DELIVERY_ONLY}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    headers = "".join(f"\0{name}={value}" for name, value in variant)
    return hashlib.sha256(f"{namespace}\0{api}\0{text}{headers}".encode()).hexdigest()


def conversation_text(body: dict[str, Any], max_messages: int, max_chars: int) -> str | None:
    """The conversation as role-tagged lines; None when it is too long or holds anything that is
    not text (an image, audio, a file: its meaning is not in the text, so exact cache only)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > max_messages:
        return None
    lines = []
    system = body.get("system")
    if system is not None:
        text = _text(system)
        if text is None:
            return None
        lines.append(f"system: {text}")
    for message in messages:
        if not isinstance(message, dict):
            return None
        text = _text(message.get("content"))
        if text is None:
            return None
        # Tool calls and results are part of what was said: kept verbatim, so that the guard
        # sees their numbers.
        calls = message.get("tool_calls")
        if calls:
            text += " " + json.dumps(calls, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        lines.append(f"{message.get('role', '')}: {text}")
    joined = "\n".join(lines)
    return joined if len(joined) <= max_chars else None


def _text(content: Any) -> str | None:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = []
    for part in content:
        if not isinstance(part, dict):
            return None
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind in ("tool_use", "tool_result"):
            parts.append(json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        else:
            return None
    return " ".join(parts)


def prompt_of(namespace: str, api: str, body: dict[str, Any], variant: tuple[tuple[str, str], ...],
              max_messages: int, max_chars: int) -> Prompt | None:
    text = conversation_text(body, max_messages, max_chars)
    if text is None:
        return None
    return Prompt(text, partition_key(namespace, api, body, variant))
