"""OpenAI chat.completion.chunk stream -> Anthropic Messages SSE stream.

* The first chunk with choices (or with usage) -> ``message_start``. OpenAI
  only reports usage at the end, so its usage has zero input tokens; the real
  figures follow in ``message_delta`` as cumulative totals, which current
  Anthropic SDKs apply over message_start's.
* ``delta.content`` -> a text block (opened on first text), ``text_delta``.
* ``delta.tool_calls`` -> one ``tool_use`` block per OpenAI tool index,
  opened with its id and name, then ``input_json_delta`` pieces. Anthropic
  blocks are strictly sequential, so opening a block stops the previous one.
* ``finish_reason`` -> ``content_block_stop`` of the open block. The
  ``message_delta`` (stop reason + usage) waits for the usage chunk that
  OpenAI sends *after* the finish chunk, or for ``[DONE]`` when none comes;
  ``message_stop`` follows it.
* ``{"error": {...}}`` -> ``event: error``; nothing is sent after it.

Only choice 0 is translated: Anthropic has a single reply per message.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from ..usage import Usage, from_openai
from .common import EndsOnce, anthropic_id_from_openai, event_json, sse_event, stop_reason_from_finish_reason, tool_use_id
from .errors import anthropic_error_object, anthropic_from_openai_error
from .response import anthropic_usage_from_openai

__all__ = ["OpenAIToAnthropicStream", "truncated_anthropic_error"]

TRUNCATED_MESSAGE = "The upstream stream was cut before the response was complete."


def truncated_anthropic_error() -> bytes:
    return sse_event("error", anthropic_error_object(TRUNCATED_MESSAGE, "api_error"))


class OpenAIToAnthropicStream(EndsOnce):
    """``include_usage_strip``: send only ``output_tokens`` in the final
    ``message_delta`` usage, the shape older Anthropic clients know, instead
    of also repeating the cumulative input and cache totals."""

    def __init__(self, model: str, include_usage_strip: bool = False) -> None:
        super().__init__()
        self.model = model
        self.include_usage_strip = include_usage_strip
        self._message_id = ""
        self._next_block = 0
        self._open_block: int | None = None
        self._text_block: int | None = None
        self._tool_blocks: dict[int, int] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        """Upstream usage (from OpenAI's usage chunk), None until it arrives."""
        return from_openai({"usage": self._usage})

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        if event.data.strip() == "[DONE]":
            return self._end()
        chunk = event_json(event)
        if chunk is None:
            return self._fail(sse_event("error", anthropic_error_object(
                "The upstream stream sent an event that is not a JSON object.", "api_error")))
        if "error" in chunk and chunk["error"] is not None:
            return self._fail(sse_event("error", anthropic_from_openai_error(500, chunk["error"])))
        out = bytearray()
        choices = [c for c in chunk.get("choices") or () if isinstance(c, dict) and c.get("index", 0) == 0]
        usage = chunk.get("usage")
        if not self._message_id and (choices or isinstance(usage, dict)):
            out += self._start(chunk)
        for choice in choices:
            out += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason") is not None and self._finish is None:
                self._finish = choice["finish_reason"]
                out += self._close_open_block()
        if isinstance(usage, dict):
            self._usage = usage
        if self._finish is not None and self._usage is not None:
            out += self._end()
        return bytes(out)

    def _truncated(self) -> bytes:
        # Without [DONE] (or a finish reason and usage): an error event, never a message_stop.
        return truncated_anthropic_error()

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._message_id = anthropic_id_from_openai(chunk.get("id"), (self.model, chunk.get("created")))
        usage = anthropic_usage_from_openai(chunk.get("usage"))
        message = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return sse_event("message_start", {"type": "message_start", "message": message})

    def _open(self, block: dict[str, Any]) -> tuple[int, bytes]:
        out = self._close_open_block()
        index = self._next_block
        self._next_block += 1
        self._open_block = index
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return index, out + sse_event("content_block_start", start)

    def _close_open_block(self) -> bytes:
        if self._open_block is None:
            return b""
        index, self._open_block = self._open_block, None
        if index == self._text_block:
            # Text after a tool call goes to a new block: this one is stopped.
            self._text_block = None
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                if self._text_block is None or self._open_block != self._text_block:
                    self._text_block, opened = self._open({"type": "text", "text": ""})
                    out += opened
                out += self._block_delta(self._text_block, {"type": "text_delta", "text": text})
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            tool_index = call.get("index", 0)
            fn = call.get("function") or {}
            block = self._tool_blocks.get(tool_index)
            if block is None:
                block, opened = self._open({
                    "type": "tool_use",
                    "id": call.get("id") or tool_use_id(self._message_id, tool_index),
                    "name": fn.get("name") or "",
                    "input": {},
                })
                self._tool_blocks[tool_index] = block
                out += opened
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                # OpenAI streams one tool call after another; a late piece of
                # an earlier call still goes to that call's own block index.
                out += self._block_delta(block, {"type": "input_json_delta", "partial_json": arguments})
        return out

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _end(self) -> bytes:
        out = b""
        if not self._message_id:
            # [DONE] with no chunk at all still has to look like a message.
            out += self._start({})
        out += self._close_open_block()
        full = anthropic_usage_from_openai(self._usage)
        if self.include_usage_strip:
            usage: dict[str, Any] = {"output_tokens": full["output_tokens"]}
        elif self._usage is None:
            # Without OpenAI's usage chunk the input figures are unknown;
            # omitting them keeps message_start's (zero) values.
            usage = {"output_tokens": 0}
        else:
            usage = full
        delta = {"stop_reason": stop_reason_from_finish_reason(self._finish), "stop_sequence": None}
        out += sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        out += sse_event("message_stop", {"type": "message_stop"})
        self.done = True
        return out
