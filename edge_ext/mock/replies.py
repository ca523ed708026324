"""Deterministic answers, independent of the API dialect.

The answer is a pure function of the request (plus ``x-mock-*`` knobs), so
tests and caches see identical output for identical input:

* text: ``"Mock reply to: <first 40 chars of the last user text>. This is a
  deterministic mock answer."`` (after a tool result: ``"Mock reply using tool
  result: <first 40 chars of the result>. …"``); words are single-spaced;
* stop sequences cut the text at the earliest match (the match is not
  emitted), then ``max_tokens`` keeps the first N words (one word = one
  token) and marks the finish as ``length``;
* tool calls carry ``{"query": <last user text>}`` as arguments;
* ``x-mock-refusal: true`` makes the model refuse: no text, finished as a
  content-policy refusal (OpenAI ``content_filter``, Anthropic ``refusal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from .tokens import count_completion, count_json, count_text

SNIPPET_CHARS = 40
TOOL_PHRASE = "use tool"
MAX_OUTPUT_WORDS = 100_000
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_TAIL = "This is a deterministic mock answer."

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_STOP_SEQUENCE = "stop_sequence"
FINISH_TOOL = "tool"
FINISH_REFUSAL = "refusal"


class WireFinish(NamedTuple):
    openai: str  # Chat Completions finish_reason
    anthropic: str  # Messages stop_reason


# Each finish as the APIs name it, in one table so that no API misses one. OpenAI reports a matched
# stop sequence as a plain "stop".
WIRE_FINISH: dict[str, WireFinish] = {
    FINISH_STOP: WireFinish("stop", "end_turn"),
    FINISH_LENGTH: WireFinish("length", "max_tokens"),
    FINISH_STOP_SEQUENCE: WireFinish("stop", "stop_sequence"),
    FINISH_TOOL: WireFinish("tool_calls", "tool_use"),
    FINISH_REFUSAL: WireFinish("content_filter", "refusal"),
}


class KnobError(ValueError):
    """An ``x-mock-*`` content knob has an invalid value."""


@dataclass(frozen=True, slots=True)
class ReplyKnobs:
    """Content and usage knobs read from request headers."""

    reply: str | None = None
    output_words: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    refusal: bool = False

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "ReplyKnobs":
        def number(name: str, hi: int) -> int | None:
            raw = headers.get(name)
            if raw is None:
                return None
            try:
                value = int(raw)
            except ValueError:
                raise KnobError(f"{name} must be an integer, got {raw!r}") from None
            if not 0 <= value <= hi:
                raise KnobError(f"{name} must be within 0..{hi}, got {value}")
            return value

        return cls(
            reply=headers.get("x-mock-reply"),
            output_words=number("x-mock-output-words", MAX_OUTPUT_WORDS),
            cached_tokens=number("x-mock-cached-tokens", 10**9) or 0,
            cache_creation_tokens=number("x-mock-cache-creation-tokens", 10**9) or 0,
            reasoning_tokens=number("x-mock-reasoning-tokens", 10**9) or 0,
            refusal=_flag(headers.get("x-mock-refusal")),
        )


def _flag(raw: str | None) -> bool:
    if raw is None or raw.lower() in ("0", "false"):
        return False
    if raw.lower() in ("1", "true"):
        return True
    raise KnobError(f"x-mock-refusal must be true or false, got {raw!r}")


NO_KNOBS = ReplyKnobs()


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """What the mock "generated": either words of text or one tool call."""

    words: tuple[str, ...]
    finish: str
    stop_sequence: str | None = None
    tool_name: str | None = None
    tool_arguments: dict[str, str] | None = None

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def completion_tokens(self) -> int:
        if self.tool_name is not None:
            return max(1, count_text(self.tool_name) + count_json(self.tool_arguments))
        return count_completion(self.text)

    def deltas(self) -> list[str]:
        """Streaming pieces that concatenate to ``text``: one word per delta,
        with the separating space leading as BPE tokens carry it."""
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]


def text_of(content: Any) -> str:
    """The text a message's content says, in either dialect: a string as is,
    the ``text`` parts/blocks of a list joined by spaces, else nothing."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS].rstrip()


def wants_tool(last_user_text: str) -> bool:
    return TOOL_PHRASE in last_user_text.lower()


def base_text(last_user_text: str, tool_result_text: str | None, knobs: ReplyKnobs) -> list[str]:
    if knobs.reply is not None:
        words = knobs.reply.split()
    elif tool_result_text is not None:
        words = f"Mock reply using tool result: {snippet(tool_result_text) or '(empty)'}. {_TAIL}".split()
    else:
        words = f"Mock reply to: {snippet(last_user_text) or '(empty)'}. {_TAIL}".split()
    if knobs.output_words is not None:
        target = knobs.output_words
        if target <= len(words):
            words = words[:target]
        else:
            words.extend(_FILLER[i % len(_FILLER)] for i in range(target - len(words)))
    return words


def _apply_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    best_at, best_seq = -1, None
    for seq in stops:
        if not seq:
            continue
        at = text.find(seq)
        if at != -1 and (best_at == -1 or at < best_at):
            best_at, best_seq = at, seq
    return (text, None) if best_seq is None else (text[:best_at], best_seq)


def plan_text(
    last_user_text: str,
    *,
    tool_result_text: str | None = None,
    max_tokens: int | None = None,
    stop: tuple[str, ...] = (),
    knobs: ReplyKnobs = NO_KNOBS,
) -> ReplyPlan:
    if knobs.refusal:
        return ReplyPlan(words=(), finish=FINISH_REFUSAL)
    text = " ".join(base_text(last_user_text, tool_result_text, knobs))
    text, matched = _apply_stop(text, stop)
    words = tuple(text.split())
    if max_tokens is not None and len(words) > max_tokens:
        return ReplyPlan(words=words[:max_tokens], finish=FINISH_LENGTH)
    if matched is not None:
        return ReplyPlan(words=words, finish=FINISH_STOP_SEQUENCE, stop_sequence=matched)
    return ReplyPlan(words=words, finish=FINISH_STOP)


def plan_tool_call(tool_name: str, last_user_text: str) -> ReplyPlan:
    return ReplyPlan(
        words=(),
        finish=FINISH_TOOL,
        tool_name=tool_name,
        tool_arguments={"query": last_user_text},
    )
