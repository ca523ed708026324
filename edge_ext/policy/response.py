"""The response half of one exchange: what the processor does with the provider's answer.

A codec is chosen per request once the body is routed; at the response headers it says how much
of the body it needs (a mode override), then transforms what it is shown. All pure.
"""

from __future__ import annotations

import json
from typing import Protocol

from edge_ext.policy.decisions import ResponseMode
from edge_ext.message import ChatRequest
from edge_ext.sse import Event, SSEParser, encode
from edge_ext.translate import (
    AnthropicToOpenAIStream,
    OpenAIStreamPassthrough,
    OpenAIToAnthropicStream,
    TranslationError,
    anthropic_error_from_openai,
    anthropic_to_openai_response,
    openai_error_from_anthropic,
    openai_to_anthropic_response,
)
from edge_ext.translate.stream_to_anthropic import truncated_anthropic_error

_TERMINAL = {"openai": lambda ev: ev.data.strip() == "[DONE]", "anthropic": lambda ev: ev.event == "message_stop"}


class ResponseCodec(Protocol):
    def mode(self, status: int) -> ResponseMode: ...

    def transform(self, status: int, chunk: bytes, end_of_stream: bool) -> bytes | None: ...


class Passthrough:
    def mode(self, status: int) -> ResponseMode:
        return ResponseMode.NONE

    def transform(self, status: int, chunk: bytes, end_of_stream: bool) -> bytes | None:
        return None


class TranslateJSON:
    """A whole JSON answer (or error) from one API shape to the other."""

    def __init__(self, client_api: str, model: str, created: int):
        self.client_api, self.model, self.created = client_api, model, created
        # Set when a 2xx answer could not be translated: the client gets this status instead.
        self.status_override: int | None = None

    def mode(self, status: int) -> ResponseMode:
        return ResponseMode.BUFFERED

    def transform(self, status: int, chunk: bytes, end_of_stream: bool) -> bytes | None:
        if status >= 400:
            if self.client_api == "openai":
                return openai_error_from_anthropic(status, chunk)
            return anthropic_error_from_openai(status, chunk)
        try:
            body = json.loads(chunk)
        except ValueError:
            return self._bad_upstream(status)
        try:
            if self.client_api == "openai":
                out = anthropic_to_openai_response(body, model=self.model, created=self.created)
            else:
                out = openai_to_anthropic_response(body, model=self.model)
        except TranslationError:
            return self._bad_upstream(status)
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()

    def _bad_upstream(self, status: int) -> bytes:
        self.status_override = 502
        if self.client_api == "openai":
            return openai_error_from_anthropic(502, b"")
        return anthropic_error_from_openai(502, b"")


class TranslateStream:
    """SSE events from the upstream's shape to the client's, chunk by chunk, at any split."""

    def __init__(self, upstream_api: str, translator, errors: TranslateJSON | None):
        self.parser = SSEParser()
        self.translator = translator
        self.terminal = _TERMINAL[upstream_api]
        self.clean = False
        # Errors before the stream starts come as one JSON body: translated whole.
        self.errors = errors

    def mode(self, status: int) -> ResponseMode:
        return ResponseMode.STREAMED if status < 400 else ResponseMode.BUFFERED

    def transform(self, status: int, chunk: bytes, end_of_stream: bool) -> bytes | None:
        if status >= 400:
            return self.errors.transform(status, chunk, end_of_stream) if self.errors else None
        out = bytearray()
        for event in self.parser.feed(chunk):
            self.clean = self.clean or self.terminal(event)
            out += self.translator.feed(event)
        if end_of_stream:
            for event in self.parser.close():
                self.clean = self.clean or self.terminal(event)
                out += self.translator.feed(event)
            # An upstream that ended without its terminal event was cut: the client must see an
            # error in its own shape, never a clean end.
            out += self.translator.finish(self.clean)
        return bytes(out)


class AnthropicStreamPassthrough:
    """Anthropic to Anthropic: events re-emitted as they are, a cut stream ends in an error."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        self.done = event.event in ("message_stop", "error")
        return encode(event.event, event.data)

    def finish(self, clean: bool) -> bytes:
        if self.done:
            return b""
        self.done = True
        return truncated_anthropic_error()


def codec_for(request: ChatRequest, upstream_api: str, strip_usage: bool, created: int) -> ResponseCodec:
    client_api, stream, model = request.api, request.stream, request.model
    if client_api == upstream_api:
        if not stream:
            return Passthrough()
        # Streams are always watched: a stream the upstream ends without its terminal event must
        # reach the client as an error event, and usage we asked for on its behalf is removed.
        if upstream_api == "openai":
            return TranslateStream(upstream_api, OpenAIStreamPassthrough(strip_usage=strip_usage), None)
        return TranslateStream(upstream_api, AnthropicStreamPassthrough(), None)
    errors = TranslateJSON(client_api, model, created)
    if not stream:
        return errors
    if client_api == "openai":
        options = request.body.get("stream_options")
        wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return TranslateStream(upstream_api, AnthropicToOpenAIStream(model=model, created=created, include_usage=wants_usage), errors)
    return TranslateStream(upstream_api, OpenAIToAnthropicStream(model=model), errors)
