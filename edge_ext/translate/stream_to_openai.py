"""Anthropic Messages SSE stream -> OpenAI chat.completion.chunk stream.

Event by event:

* ``message_start`` -> the first chunk, ``delta: {"role": "assistant",
  "content": ""}`` as OpenAI opens every stream;
* ``content_block_start`` of a ``tool_use`` -> a ``tool_calls`` delta with
  id, name and empty arguments; its ``input_json_delta`` pieces -> arguments
  deltas at the same tool index (OpenAI numbers tool calls from 0, ignoring
  text blocks in between);
* ``text_delta`` -> ``delta.content``;
* ``message_delta`` -> the finish chunk (``delta: {}`` + finish_reason);
* ``message_stop`` -> the usage chunk (``choices: []``, only when the client
  asked for ``include_usage``), then ``data: [DONE]``;
* ``error`` -> ``data: {"error": {...}}`` and nothing after it, which is how
  OpenAI reports a failure once the 200 header is out (no ``[DONE]``).

Thinking, signature and citation deltas have no chunk field and are not
shown; ``ping`` and event types this module does not know are skipped, as
Anthropic asks clients to do for forward compatibility.
"""

from __future__ import annotations

from typing import Any

from ..sse import Event
from ..usage import StreamUsage, Usage
from .common import DONE, EndsOnce, event_json, finish_reason_from_stop_reason, openai_id_from_anthropic, sse_data
from .errors import openai_error_object, openai_from_anthropic_error
from .response import openai_usage_from_anthropic

__all__ = ["AnthropicToOpenAIStream", "truncated_openai_error"]

TRUNCATED_MESSAGE = "The upstream stream ended before the response was complete."


def truncated_openai_error() -> bytes:
    return sse_data(openai_error_object(TRUNCATED_MESSAGE, "api_error", "stream_truncated"))


class AnthropicToOpenAIStream(EndsOnce):
    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        super().__init__()
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.id = openai_id_from_anthropic(None, (model, created))
        self._started = False
        self._tool_index: dict[int, int] = {}
        self._usage = StreamUsage("anthropic")

    @property
    def usage(self) -> Usage | None:
        """Upstream usage seen so far, so a caller need not parse every event
        a second time to account tokens."""
        return self._usage.usage

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        payload = event_json(event)
        if payload is None:
            return self._fail(sse_data(openai_error_object(
                "The upstream stream sent an event that is not a JSON object.", "api_error", "bad_upstream_stream")))
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            return self._fail(sse_data(openai_from_anthropic_error(500, payload.get("error"))))
        self._usage.observe_payload(payload)
        if kind == "message_start":
            return self._start(payload.get("message") or {})
        if not self._started:
            # Deltas before message_start break the protocol; show nothing
            # rather than chunks without the role that opens a stream.
            return b""
        part_key = _PART_KEY.get(kind)
        if part_key is not None:
            part = payload.get(part_key) or {}
            handler = _PARTS.get(part.get("type"))
            return handler(self, part, payload) if handler is not None else b""
        if kind == "message_delta":
            delta = payload.get("delta") or {}
            if delta.get("stop_reason") is None:
                return b""
            return self._chunk({}, finish_reason_from_stop_reason(delta["stop_reason"]))
        if kind == "message_stop":
            self.done = True
            return self._usage_chunk() + DONE
        return b""

    def _truncated(self) -> bytes:
        # Never a clean [DONE] before message_stop.
        return truncated_openai_error()

    def _start(self, message: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        self.id = openai_id_from_anthropic(message.get("id"), (self.model, self.created))
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def _tool_start(self, block: dict[str, Any], payload: dict[str, Any]) -> bytes:
        tool_index = len(self._tool_index)
        self._tool_index[payload.get("index")] = tool_index
        call = {"index": tool_index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": ""}}
        return self._chunk({"tool_calls": [call]})

    def _tool_arguments(self, delta: dict[str, Any], payload: dict[str, Any]) -> bytes:
        tool_index = self._tool_index.get(payload.get("index"))
        piece = delta.get("partial_json")
        # The service opens every tool input with an empty partial_json,
        # which carries nothing for the client.
        if tool_index is None or not piece:
            return b""
        return self._chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]})

    def _text_part(self, part: dict[str, Any], payload: dict[str, Any]) -> bytes:
        return self._text(part.get("text"))

    def _text(self, text: Any) -> bytes:
        # A text block opens empty; an empty text is no chunk.
        return self._chunk({"content": text}) if text else b""

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            # OpenAI sends "usage": null on every chunk once usage is requested.
            chunk["usage"] = None
        return chunk

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_data(self._envelope([choice]))

    def _usage_chunk(self) -> bytes:
        usage = self._usage.usage
        if not self.include_usage or usage is None:
            return b""
        chunk = self._envelope([])
        chunk["usage"] = openai_usage_from_anthropic({
            "input_tokens": usage.input_tokens,
            "cache_read_input_tokens": usage.cached_input_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"thinking_tokens": usage.reasoning_tokens} if usage.reasoning_tokens else None,
        })
        return sse_data(chunk)


# Anthropic's content events carry their part under a key of their own; the part's type says
# what the client gets. Other parts (thinking, signatures) have no Chat Completions form.
_PART_KEY = {"content_block_start": "content_block", "content_block_delta": "delta"}
_PARTS = {
    "text": AnthropicToOpenAIStream._text_part,
    "text_delta": AnthropicToOpenAIStream._text_part,
    "tool_use": AnthropicToOpenAIStream._tool_start,
    "input_json_delta": AnthropicToOpenAIStream._tool_arguments,
}
