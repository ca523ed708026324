"""Usage of a stream, from its events as they pass."""

from __future__ import annotations

import json
from typing import Any

from edge_ext.sse import Event
from edge_ext.usage.figures import (Usage, _anthropic_usage, _count, _details, _Implausible, _openai_usage,
                                    _responses_usage)

# The stream events of the Responses API whose ``response`` holds the final usage.
RESPONSES_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


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
        observe = _OBSERVERS.get(api)
        if observe is None:
            raise ValueError(f"unknown API {api!r}: expected one of {', '.join(_OBSERVERS)}")
        self.api, self._observe = api, observe
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


# One entry per API, as edge_ext.usage.READERS.
_OBSERVERS = {"openai": StreamUsage._observe_openai, "anthropic": StreamUsage._observe_anthropic,
              "responses": StreamUsage._observe_responses}
