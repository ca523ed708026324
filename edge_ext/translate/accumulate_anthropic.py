"""Anthropic Messages: fold a streamed answer's events into one ``message`` object.

See :mod:`edge_ext.translate.accumulate` for when an answer counts as complete.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..sse import Event
from .common import event_json

__all__ = ["AnthropicAccumulator", "TOOL_INPUT_BLOCKS"]

# Block types whose ``input`` object is streamed as ``input_json_delta``
# pieces of its JSON text after a ``content_block_start`` with ``input: {}``.
TOOL_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})

# message_delta usage figures are cumulative totals that replace those of
# message_start; a field the delta leaves out (or sends as null) keeps its
# message_start value, which is how the official SDKs merge them too.
_STOP_FIELDS = ("stop_reason", "stop_sequence")


class AnthropicAccumulator:
    """Messages API events -> one ``message`` object.

    ``message_start`` gives the envelope; each ``content_block_start`` opens
    block ``index`` and its deltas grow it (``text_delta``, ``thinking_delta``,
    ``signature_delta``, ``citations_delta``, ``input_json_delta``);
    ``message_delta`` sets stop reason, stop sequence and the final usage.
    Blocks that arrive whole (e.g. ``redacted_thinking``, server tool
    results) are kept as their start event gave them.
    """

    __slots__ = ("_message", "_blocks", "_json", "_stopped", "_failed", "_result")

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._stopped = False
        self._failed = False
        self._result: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        """``message_stop`` was seen, no ``error`` event was, and every tool
        input forms a JSON object (a JSON answer could not hold it otherwise)."""
        return self._result is not None

    def feed(self, event: Event) -> None:
        if self._stopped or self._failed:
            return
        payload = event_json(event)
        if payload is None:
            self._failed = True
            return
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            # An overload or API error after the 200 header; the stream ends
            # there and what came before is not a whole answer.
            self._failed = True
            return
        if kind == "message_start":
            message = payload.get("message")
            if self._message is not None or not isinstance(message, dict):
                self._failed = True
                return
            self._message = message
            # Blocks may in principle come prefilled in message_start.
            for index, block in enumerate(message.get("content") or ()):
                if isinstance(block, dict):
                    self._blocks[index] = block
            return
        handler = _HANDLED.get(kind)
        if handler is None:
            # ``ping`` keep-alives, and event types added after this code was
            # written, which Anthropic asks clients to skip.
            return
        if self._message is None:
            # Every other event refers to the message message_start opened.
            self._failed = True
            return
        handler(self, payload)

    def _block_start(self, payload: dict[str, Any]) -> None:
        block = payload.get("content_block")
        index = payload.get("index")
        if not isinstance(block, dict) or not isinstance(index, int) or index in self._blocks:
            self._failed = True
            return
        self._blocks[index] = block

    def _block_delta(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        delta = payload.get("delta")
        if block is None or not isinstance(delta, dict):
            self._failed = True
            return
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = (block.get("text") or "") + (delta.get("text") or "")
        elif kind == "input_json_delta":
            # The pieces are fragments of one JSON text (cut anywhere, even
            # inside a string or escape); only their concatenation parses.
            self._json.setdefault(index, []).append(delta.get("partial_json") or "")
        elif kind == "thinking_delta":
            block["thinking"] = (block.get("thinking") or "") + (delta.get("thinking") or "")
        elif kind == "signature_delta":
            # The signature arrives whole, right before the block stops.
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            citations = block.get("citations")
            block["citations"] = (citations if isinstance(citations, list) else []) + [delta.get("citation")]
        # Other delta types are newer than this code and carry nothing the
        # blocks above hold.

    def _block_stop(self, payload: dict[str, Any]) -> None:
        if payload.get("index") not in self._blocks:
            self._failed = True

    def _message_delta(self, payload: dict[str, Any]) -> None:
        assert self._message is not None
        delta = payload.get("delta")
        if isinstance(delta, dict):
            for key in _STOP_FIELDS:
                # A null stop_sequence is meaningful (no sequence matched).
                if key in delta:
                    self._message[key] = delta[key]
            for key, value in delta.items():
                if key not in _STOP_FIELDS and value is not None:
                    self._message[key] = value
        usage = payload.get("usage")
        if isinstance(usage, dict):
            merged = dict(self._message.get("usage") or {})
            merged.update((k, v) for k, v in usage.items() if v is not None)
            self._message["usage"] = merged

    def _message_stop(self, payload: dict[str, Any]) -> None:
        self._stopped = True
        self._result = self._build()
        if self._result is None:
            self._failed = True

    def _build(self) -> dict[str, Any] | None:
        assert self._message is not None
        if sorted(self._blocks) != list(range(len(self._blocks))):
            # Block indexes count up from 0 with no gap; a gap means a block
            # was lost and the content would be silently incomplete.
            return None
        content = []
        for index in range(len(self._blocks)):
            block = self._blocks[index]
            if index in self._json:
                text = "".join(self._json[index])
                try:
                    # An empty input JSON is a call without arguments.
                    value = json.loads(text) if text.strip() else {}
                except ValueError:
                    return None
                if not isinstance(value, dict):
                    return None
                block["input"] = value
            content.append(block)
        message = dict(self._message)
        message["content"] = content
        return message

    def result(self) -> dict[str, Any] | None:
        """The ``message`` object, or ``None`` unless ``complete``. A fresh
        copy every call, so callers may change it."""
        return copy.deepcopy(self._result)


_HANDLED = {
    "content_block_start": AnthropicAccumulator._block_start,
    "content_block_delta": AnthropicAccumulator._block_delta,
    "content_block_stop": AnthropicAccumulator._block_stop,
    "message_delta": AnthropicAccumulator._message_delta,
    "message_stop": AnthropicAccumulator._message_stop,
}
