"""Deterministic token counting shared by both API dialects.

Real providers use BPE tokenizers; the mock deliberately does not, so tests
can compute expected usage figures by hand. The rule is:

* a text counts as its number of whitespace-separated words, at least 1 for
  any non-empty text and 0 for an empty one;
* every input message adds ``MESSAGE_OVERHEAD`` (role and framing tokens,
  like OpenAI's published per-message overhead);
* the prompt as a whole adds ``REPLY_PRIMING`` (the tokens that prime the
  assistant's reply);
* an image part counts ``IMAGE_TOKENS``, an audio part ``AUDIO_TOKENS``, a
  document/file part ``DOCUMENT_TOKENS`` regardless of size;
* a tool definition counts the words of its JSON (``sort_keys``, default
  separators), a tool call the words of its name plus its JSON arguments;
* the completion counts the words generated (at least 1, since providers
  always bill the end-of-turn token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
IMAGE_TOKENS = 85
AUDIO_TOKENS = 50
DOCUMENT_TOKENS = 100

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "refusal"})
_IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})
_AUDIO_PART_TYPES = frozenset({"input_audio", "audio"})
_DOCUMENT_PART_TYPES = frozenset({"document", "file", "input_file"})


def count_text(text: object) -> int:
    """Words in ``text``; any non-empty text is at least one token."""
    if not isinstance(text, str) or not text:
        return 0
    return max(1, len(text.split()))


def count_json(value: object) -> int:
    """Tokens of a structured value (tool schemas, tool-call arguments)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(value)
    return count_text(json.dumps(value, sort_keys=True))


@dataclass(slots=True)
class PromptCount:
    """Prompt tokens, with the audio share broken out as OpenAI reports it."""

    total: int = 0
    audio: int = 0


def _count_part(part: Any, into: PromptCount) -> None:
    if isinstance(part, str):
        into.total += count_text(part)
        return
    if not isinstance(part, dict):
        return
    kind = part.get("type")
    if kind in _TEXT_PART_TYPES:
        into.total += count_text(part.get("text", part.get("refusal")))
    elif kind in _IMAGE_PART_TYPES:
        into.total += IMAGE_TOKENS
    elif kind in _AUDIO_PART_TYPES:
        into.total += AUDIO_TOKENS
        into.audio += AUDIO_TOKENS
    elif kind in _DOCUMENT_PART_TYPES:
        into.total += DOCUMENT_TOKENS
    elif kind == "tool_use":
        into.total += count_text(part.get("name")) + count_json(part.get("input"))
    elif kind == "tool_result":
        count_content(part.get("content"), into)
    elif kind in ("thinking", "redacted_thinking"):
        into.total += count_text(part.get("thinking", part.get("data")))
    else:
        # Unknown part types are billed by their serialized size so that new
        # provider features still yield a stable, non-zero figure.
        into.total += count_json(part)


def count_content(content: Any, into: PromptCount) -> None:
    """Add the tokens of a message ``content`` (string or list of parts)."""
    if isinstance(content, list):
        for part in content:
            _count_part(part, into)
    elif content is not None:
        _count_part(content, into)


def count_messages(
    messages: Iterable[dict[str, Any]],
    *,
    system: Any = None,
    tools: Iterable[Any] | None = None,
) -> PromptCount:
    """Prompt tokens of a conversation in either dialect.

    OpenAI keeps system prompts inside ``messages``; Anthropic passes them as
    ``system`` (string or text blocks), which counts like one more message.
    """
    result = PromptCount(total=REPLY_PRIMING)
    if system:
        result.total += MESSAGE_OVERHEAD
        count_content(system, result)
    for message in messages:
        result.total += MESSAGE_OVERHEAD
        count_content(message.get("content"), result)
        if message.get("name"):
            result.total += count_text(message["name"])
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                fn = call.get("function") or {}
                result.total += count_text(fn.get("name")) + count_json(fn.get("arguments"))
    for tool in tools or ():
        result.total += count_json(tool)
    return result


def count_completion(text: str) -> int:
    """Completion tokens of generated text (the end-of-turn token makes it >= 1)."""
    return max(1, count_text(text))
