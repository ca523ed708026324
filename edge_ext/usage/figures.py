"""The figures of one exchange's token usage, and their readers in an answer's JSON.

Semantics of :class:`Usage` (the same whichever API reported it), chosen so
that cost is a plain weighted sum with no double counting::

    cost = input_tokens * price_in
         + cached_input_tokens * price_cache_read
         + cache_write_tokens * price_cache_write
         + output_tokens * price_out

* ``input_tokens``: prompt tokens neither read from nor written to the cache.
* ``cached_input_tokens``: prompt tokens read from the cache.
* ``cache_write_tokens``: prompt tokens written to the cache.
* ``output_tokens``: every generated token, reasoning/thinking included
  (both providers bill reasoning as output).
* ``reasoning_tokens``: the part of ``output_tokens`` spent on reasoning, for
  observability only; it is already inside ``output_tokens``.

OpenAI's ``prompt_tokens`` *includes* its cached (and, where reported,
cache-write) tokens, so those are subtracted; Anthropic's ``input_tokens``
already excludes cache reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_ext.frozen import slot_init


@slot_init
@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, however it was served (OpenAI's prompt_tokens)."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    @property
    def total(self) -> int:
        # reasoning_tokens is a subset of output_tokens, so it is not added.
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: "Usage") -> "Usage":
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


# A count no model comes near (context windows hold millions of tokens, not hundreds of millions).
# A report past it is broken or hostile: taken at its word it would price one answer past every
# budget (10**45 tokens cost about 1.5e38 USD). It counts as no report at all, so the answer is
# charged by estimate and marked so, as one whose report never came (edge_ext.cost.estimate).
MAX_REPORTED_TOKENS = 100_000_000


class _Implausible(Exception):
    """A usage report holding a count past MAX_REPORTED_TOKENS."""


def _count(value: Any) -> int:
    # Providers send null for "not applicable"; anything that is not a
    # non-negative integer is treated as absent rather than trusted.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        if value > MAX_REPORTED_TOKENS:
            raise _Implausible
        return value
    return 0


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    details = usage.get(key)
    return details if isinstance(details, dict) else {}


# Each API's arithmetic on its counts (already checked by ``_count`` or ``_whole``), shared by the
# readers of a JSON usage object and of Envoy's extraction of it.
def _openai(prompt: int, cached: int, written: int, output: int, reasoning: int) -> Usage:
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    return Usage(prompt - cached - written, output, cached, written, min(reasoning, output))


def _anthropic(input_: int, output: int, cache_read: int, cache_creation: int, thinking: int) -> Usage:
    return Usage(input_, output, cache_read, cache_creation, min(thinking, output))


def _responses(prompt: int, cached: int, output: int, reasoning: int) -> Usage:
    # The Responses API's input_tokens include the cached ones, as Chat Completions' prompt_tokens do.
    cached = min(cached, prompt)
    return Usage(prompt - cached, output, cached, 0, min(reasoning, output))


def _openai_usage(usage: dict[str, Any]) -> Usage:
    prompt_details = _details(usage, "prompt_tokens_details")
    return _openai(_count(usage.get("prompt_tokens")), _count(prompt_details.get("cached_tokens")),
                   _count(prompt_details.get("cache_write_tokens")), _count(usage.get("completion_tokens")),
                   _count(_details(usage, "completion_tokens_details").get("reasoning_tokens")))


def _anthropic_usage(usage: dict[str, Any]) -> Usage:
    return _anthropic(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")),
                      _count(usage.get("cache_read_input_tokens")), _count(usage.get("cache_creation_input_tokens")),
                      _count(_details(usage, "output_tokens_details").get("thinking_tokens")))


def _responses_usage(usage: dict[str, Any]) -> Usage:
    return _responses(_count(usage.get("input_tokens")), _count(_details(usage, "input_tokens_details").get("cached_tokens")),
                      _count(usage.get("output_tokens")), _count(_details(usage, "output_tokens_details").get("reasoning_tokens")))


def _reported(read: Callable[[dict[str, Any]], Usage], usage: dict[str, Any]) -> Usage | None:
    try:
        return read(usage)
    except _Implausible:
        return None


def from_responses(body: dict[str, Any]) -> Usage | None:
    """Usage of a Responses API ``response`` object, or None (an error, or no usage yet)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_responses_usage, usage) if isinstance(usage, dict) else None


def from_openai(body: dict[str, Any]) -> Usage | None:
    """Usage of a chat.completion body (or of one stream chunk), or None."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_openai_usage, usage) if isinstance(usage, dict) else None


def from_anthropic(body: dict[str, Any]) -> Usage | None:
    """Usage of a Messages API message body, or None (e.g. an error body)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_anthropic_usage, usage) if isinstance(usage, dict) else None

