"""Token usage of one exchange, read from either API's JSON body or stream.

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

import json
import math
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .frozen import slot_init
from .sse import Event

__all__ = ["READERS", "Reader", "StreamUsage", "Usage", "from_anthropic", "from_openai", "from_responses"]


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


def plausible(extracted: Mapping[str, float], keys: Iterable[str]) -> bool:
    """Whether none of ``keys`` in Envoy's extraction of a usage report is a count past
    MAX_REPORTED_TOKENS (an infinity, like NaN, is no count at all: read as absent, as in JSON)."""
    if not extracted or max(extracted.values()) <= MAX_REPORTED_TOKENS:  # the usual case: one comparison (NaN fails it)
        return True
    get = extracted.get
    return not any(MAX_REPORTED_TOKENS < get(key, 0) < math.inf for key in keys)


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


# Envoy's extraction gives JSON numbers as doubles: a count is a whole, positive one, as ``_count``
# reads the JSON itself (NaN and infinities fail both tests). Inline: once per outcome and figure.
def _openai_extracted(x: Mapping[str, float]) -> Usage:
    get = x.get
    p, c, o, r = get("prompt_tokens", 0), get("cached_tokens", 0), get("completion_tokens", 0), get("reasoning_tokens", 0)
    return _openai(int(p) if p > 0 and p % 1 == 0 else 0, int(c) if c > 0 and c % 1 == 0 else 0, 0,
                   int(o) if o > 0 and o % 1 == 0 else 0, int(r) if r > 0 and r % 1 == 0 else 0)


def _anthropic_extracted(x: Mapping[str, float]) -> Usage:
    get = x.get
    i, o = get("input_tokens", 0), get("output_tokens", 0)
    r, w = get("cache_read_input_tokens", 0), get("cache_creation_input_tokens", 0)
    return _anthropic(int(i) if i > 0 and i % 1 == 0 else 0, int(o) if o > 0 and o % 1 == 0 else 0,
                      int(r) if r > 0 and r % 1 == 0 else 0, int(w) if w > 0 and w % 1 == 0 else 0, 0)


def _responses_extracted(x: Mapping[str, float]) -> Usage:
    get = x.get
    i, c = get("input_tokens", 0), get("input_cached_tokens", 0)
    o, r = get("output_tokens", 0), get("output_reasoning_tokens", 0)
    return _responses(int(i) if i > 0 and i % 1 == 0 else 0, int(c) if c > 0 and c % 1 == 0 else 0,
                      int(o) if o > 0 and o % 1 == 0 else 0, int(r) if r > 0 and r % 1 == 0 else 0)


def _reported(read: Callable[[dict[str, Any]], Usage], usage: dict[str, Any]) -> Usage | None:
    try:
        return read(usage)
    except _Implausible:
        return None


def from_responses(body: dict[str, Any]) -> Usage | None:
    """Usage of a Responses API ``response`` object, or None (an error, or no usage yet)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_responses_usage, usage) if isinstance(usage, dict) else None


# The stream events of the Responses API whose ``response`` holds the final usage.
RESPONSES_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def from_openai(body: dict[str, Any]) -> Usage | None:
    """Usage of a chat.completion body (or of one stream chunk), or None."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_openai_usage, usage) if isinstance(usage, dict) else None


def from_anthropic(body: dict[str, Any]) -> Usage | None:
    """Usage of a Messages API message body, or None (e.g. an error body)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    return _reported(_anthropic_usage, usage) if isinstance(usage, dict) else None


class StreamUsage:
    """Usage of a stream, fed every parsed event in order.

    OpenAI reports usage once, in the final chunk with ``choices: []`` (only
    when ``stream_options.include_usage`` was set); every other chunk carries
    ``usage: null``. Some compatible servers repeat running totals on every
    chunk, so the last usage object seen wins; nothing is ever summed.

    The Responses API reports it once, in the ``response`` of its closing event
    (``response.completed``, ``.incomplete`` or ``.failed``).

    Anthropic splits usage: ``message_start`` has the input and cache figures
    and a provisional output count; ``message_delta`` has the cumulative
    output count, and newer API versions also put cumulative input and cache
    totals there. Cumulative figures replace earlier ones, never add to them.
    """

    __slots__ = ("api", "_observe", "_fields", "_seen", "_final")

    def __init__(self, api: str) -> None:
        reader = READERS.get(api)
        if reader is None:
            raise ValueError(f"unknown API {api!r}: expected one of {', '.join(READERS)}")
        self.api, self._observe = api, reader.stream
        self._fields: dict[str, int] = {}
        self._seen = False
        self._final = False

    @property
    def usage(self) -> Usage | None:
        return Usage(**self._fields) if self._seen else None

    @property
    def final(self) -> bool:
        """Whether the report that closes the stream was seen (OpenAI's one usage object,
        Anthropic's ``message_delta``): without it, the figures are partial at best."""
        return self._final

    def observe(self, event: Event) -> None:
        data = event.data
        # Cheap pre-filter: most events of a long stream are deltas with no
        # usage at all, and parsing their JSON a second time is wasted work.
        if "usage" not in data:
            return
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if isinstance(payload, dict):
            self.observe_payload(payload)

    def observe_payload(self, payload: dict[str, Any]) -> None:
        """Same as :meth:`observe` for a caller that already parsed the JSON."""
        try:
            self._observe(self, payload)
        except _Implausible:
            pass  # counted before anything is kept: the figures so far stand, the report is not final

    def _observe_openai(self, payload: dict[str, Any]) -> None:
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._replace(_openai_usage(usage))
            self._final = True

    def _observe_responses(self, payload: dict[str, Any]) -> None:
        # Only the closing event's response carries usage; the opening ones say null.
        if payload.get("type") in RESPONSES_FINAL:
            response = payload.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self._replace(_responses_usage(usage))
                self._final = True

    def _observe_anthropic(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._replace(_anthropic_usage(usage))
        elif kind == "message_delta":
            usage = payload.get("usage")
            if isinstance(usage, dict):
                self._merge_anthropic_delta(usage)
                self._final = True

    def _replace(self, usage: Usage) -> None:
        self._seen = True
        self._fields = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        }

    def _merge_anthropic_delta(self, usage: dict[str, Any]) -> None:
        # Absent or null means "unchanged since message_start"; a present
        # figure is the cumulative total and replaces the earlier one.
        # Every figure is counted before any is kept (an implausible one drops the whole delta).
        reported = {target: _count(usage.get(source)) for source, target in _ANTHROPIC_DELTA
                    if usage.get(source) is not None}
        thinking = _details(usage, "output_tokens_details").get("thinking_tokens")
        if thinking is not None:
            reported["reasoning_tokens"] = _count(thinking)
        self._seen = True
        fields = self._fields
        for _, target in _ANTHROPIC_DELTA:
            fields.setdefault(target, 0)
        fields.setdefault("reasoning_tokens", 0)
        fields.update(reported)
        fields["reasoning_tokens"] = min(fields["reasoning_tokens"], fields["output_tokens"])


_ANTHROPIC_DELTA = (("output_tokens", "output_tokens"), ("input_tokens", "input_tokens"),
                    ("cache_read_input_tokens", "cached_input_tokens"), ("cache_creation_input_tokens", "cache_write_tokens"))


@dataclass(frozen=True, slots=True)
class Reader:
    """How one API reports usage: in a whole JSON answer, in a stream's events, and where under
    "usage" each figure sits: the keys Envoy's json_to_metadata extracts on the 2-message path
    (edge_ext.envoy_config.outcomes), and ``extracted``, which reads those keys' numbers as
    ``body`` reads the same figures in place (edge_ext.policy.outcome)."""

    body: Callable[[dict[str, Any]], Usage | None]
    stream: Callable[[StreamUsage, dict[str, Any]], None]
    paths: dict[str, tuple[str, ...]]
    extracted: Callable[[Mapping[str, float]], Usage]


# One entry per API (keyed like edge_ext.apis.by_name.CLIENT_APIS): every reader of usage looks here.
READERS: dict[str, Reader] = {
    "openai": Reader(from_openai, StreamUsage._observe_openai,
                     {"prompt_tokens": ("prompt_tokens",), "completion_tokens": ("completion_tokens",),
                      "cached_tokens": ("prompt_tokens_details", "cached_tokens"),
                      "reasoning_tokens": ("completion_tokens_details", "reasoning_tokens")}, _openai_extracted),
    "anthropic": Reader(from_anthropic, StreamUsage._observe_anthropic,
                        {"input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",),
                         "cache_read_input_tokens": ("cache_read_input_tokens",),
                         "cache_creation_input_tokens": ("cache_creation_input_tokens",)}, _anthropic_extracted),
    # input_tokens and output_tokens sit where Anthropic's do: Envoy's extraction of the two
    # keys serves both (edge_ext.envoy_config.outcomes keeps one rule per key).
    "responses": Reader(from_responses, StreamUsage._observe_responses,
                        {"input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",),
                         "input_cached_tokens": ("input_tokens_details", "cached_tokens"),
                         "output_reasoning_tokens": ("output_tokens_details", "reasoning_tokens")}, _responses_extracted),
}
