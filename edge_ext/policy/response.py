"""The response half of one exchange: what the processor does with the provider's answer.

A codec is chosen per request once the body is routed (from edge_ext.policy.shaping's table of
API pairs); at the response headers it says how much of the body it needs (a mode override),
then transforms what it is shown. All pure.
"""

from __future__ import annotations

import json
from typing import Protocol

from edge_ext.message import ChatRequest
from edge_ext.policy.decisions import ResponseMode
from edge_ext.policy.shaping import PAIRS, Pair, StreamTranslator
from edge_ext.sse import SSEParser
from edge_ext.translate import TranslationError


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

    def __init__(self, pair: Pair, model: str, created: int):
        self.pair, self.model, self.created = pair, model, created
        # Set when a 2xx answer could not be translated: the client gets this status instead.
        self.status_override: int | None = None

    def mode(self, status: int) -> ResponseMode:
        return ResponseMode.BUFFERED

    def transform(self, status: int, chunk: bytes, end_of_stream: bool) -> bytes | None:
        if status >= 400:
            return self.pair.error(status, chunk)
        try:
            body = json.loads(chunk)
        except ValueError:
            return self._bad_upstream()
        try:
            out = self.pair.answer(body, self.model, self.created)
        except TranslationError:
            return self._bad_upstream()
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()

    def _bad_upstream(self) -> bytes:
        self.status_override = 502
        return self.pair.error(502, b"")


class TranslateStream:
    """SSE events from the upstream's shape to the client's, chunk by chunk, at any split."""

    def __init__(self, pair: Pair, translator: StreamTranslator, errors: TranslateJSON | None):
        self.parser = SSEParser()
        self.translator = translator
        self.terminal = pair.terminal
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


def codec_for(request: ChatRequest, upstream_api: str, strip_usage: bool, created: int) -> ResponseCodec:
    pair = PAIRS[(request.api, upstream_api)]
    errors = TranslateJSON(pair, request.model, created) if pair.answer is not None else None
    if not request.stream:
        return errors or Passthrough()
    # Streams are always watched: a stream the upstream ends without its terminal event must
    # reach the client as an error event, and usage we asked for on its behalf is removed.
    return TranslateStream(pair, pair.stream(request, strip_usage, created), errors)
