"""OpenAI -> OpenAI streams, when the gateway changed the request under the client.

edge-ext sets ``stream_options.include_usage`` upstream so it can account
tokens even when the client did not ask for usage. With that option OpenAI
(a) puts ``"usage": null`` on every chunk and (b) sends one extra chunk with
``choices: []`` and the usage object before ``[DONE]``. With ``strip_usage``
both are removed, so the client sees the stream it would have got without
the option. Any other event is re-emitted unchanged, byte for byte in its
data, which also keeps the provider's key order and obfuscation padding.
"""

from __future__ import annotations

import json
from typing import Any

from ..sse import Event, encode
from .common import EndsOnce, sse_data
from .stream_to_openai import truncated_openai_error

__all__ = ["OpenAIStreamPassthrough"]


class OpenAIStreamPassthrough(EndsOnce):
    def __init__(self, strip_usage: bool) -> None:
        super().__init__()
        self.strip_usage = strip_usage

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        data = event.data
        if data.strip() == "[DONE]":
            self.done = True
            return encode(event.event, data)
        # Parse only when this event may need changing or ends the stream:
        # most chunks of a long completion are re-emitted untouched.
        if not (self.strip_usage and "usage" in data) and "error" not in data:
            return encode(event.event, data)
        try:
            chunk: Any = json.loads(data)
        except ValueError:
            return encode(event.event, data)
        if not isinstance(chunk, dict):
            return encode(event.event, data)
        if chunk.get("error") is not None:
            # OpenAI sends nothing after an in-stream error, not even [DONE].
            self.done = True
            return encode(event.event, data)
        if not self.strip_usage or "usage" not in chunk:
            return encode(event.event, data)
        if chunk.get("choices") == [] and isinstance(chunk["usage"], dict):
            return b""
        # Usage attached to a chunk that also has choices (some compatible
        # servers do that) is likewise something the client did not ask for.
        del chunk["usage"]
        if event.event is None:
            return sse_data(chunk)
        return encode(event.event, json.dumps(chunk, ensure_ascii=False, separators=(",", ":")))

    def _truncated(self) -> bytes:
        return truncated_openai_error()
