"""Incremental Server-Sent Events parsing and encoding, with no I/O.

Parsing follows the WHATWG "event stream interpretation" rules both LLM APIs
rely on: lines end in CRLF, LF or a lone CR; an empty line dispatches the
event; lines starting with ``:`` are comments (keep-alives); ``field: value``
loses exactly one space after the colon; several ``data`` lines are joined
with ``\\n``; an event without any ``data`` line is never dispatched; and at
end of stream a final event not followed by an empty line is discarded.

That last rule is what makes truncation detectable: an upstream cut in the
middle of an event leaves bytes in the parser, so ``pending`` is true and
``close()`` does not hand the half event over as if it were complete.

Bytes are split into lines before decoding. UTF-8 never uses the bytes 0x0A
or 0x0D inside a multi-byte sequence, so a character split across chunks is
simply reassembled in the line buffer and decoded once the line is complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Event", "SSEParser", "encode"]

_EOL = re.compile(rb"\r\n|\r|\n")
_EOL_STR = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. ``event`` is ``None`` when the stream named none
    (the spec's default type "message"; OpenAI never names its events)."""

    event: str | None
    data: str


class SSEParser:
    """Feed it bytes as they arrive; it returns every event completed so far."""

    __slots__ = (
        "_buf", "_scanned", "_skip_lf", "_first_line", "_data", "_event",
        "_has_fields", "_closed", "last_event_id", "retry",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        # Bytes of _buf already known to hold no line terminator, so a long
        # line trickling in byte by byte is scanned once, not quadratically.
        self._scanned = 0
        # A chunk that ended in CR: if the next byte is LF it belongs to the
        # same CRLF terminator, not to an empty line that would dispatch.
        self._skip_lf = False
        self._first_line = True
        self._data: list[str] = []
        self._event: str | None = None
        self._has_fields = False
        self._closed = False
        # Kept for callers that reconnect with Last-Event-ID; neither LLM API
        # sends ids or retry hints today.
        self.last_event_id = ""
        self.retry: int | None = None

    @property
    def pending(self) -> bool:
        """True while bytes are buffered that do not yet form a complete
        event: a partial line, or field lines awaiting their empty line."""
        return bool(self._buf) or self._has_fields

    def feed(self, chunk: bytes) -> list[Event]:
        if self._closed:
            raise RuntimeError("SSEParser.feed() after close()")
        if not chunk:
            return []
        buf = self._buf
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                start = 1
        buf += memoryview(chunk)[start:]
        events: list[Event] = []
        pos = 0
        search_from = self._scanned
        end = len(buf)
        while True:
            match = _EOL.search(buf, search_from)
            if match is None:
                break
            self._line(bytes(buf[pos:match.start()]), events)
            pos = search_from = match.end()
            if match.group() == b"\r" and pos == end:
                self._skip_lf = True
        if pos:
            del buf[:pos]
        self._scanned = len(buf)
        return events

    def close(self) -> list[Event]:
        """End of stream. Every properly terminated event was already returned
        by ``feed``; an unterminated trailing event is dropped, never
        dispatched, and ``pending`` stays true so the caller can tell the
        stream was truncated."""
        self._closed = True
        return []

    def _line(self, raw: bytes, events: list[Event]) -> None:
        line = raw.decode("utf-8", "replace")
        if self._first_line:
            self._first_line = False
            # A byte order mark is allowed only at the very start of the stream.
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            self._dispatch(events)
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        self._has_fields = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        # Any other field name is ignored, as the spec requires.

    def _dispatch(self, events: list[Event]) -> None:
        if self._data:
            events.append(Event(self._event or None, "\n".join(self._data)))
        self._data = []
        self._event = None
        self._has_fields = False


def encode(event: str | None, data: str) -> bytes:
    """One event on the wire. Every line of ``data`` becomes its own ``data:``
    line; since SSE treats CR, LF and CRLF alike as line ends, a CR in
    ``data`` comes back from a parser as LF. An empty ``event`` is the same as
    none (the default type)."""
    if event:
        if "\n" in event or "\r" in event:
            raise ValueError("an SSE event name cannot contain a line break")
        head = "event: " + event + "\n"
    else:
        head = ""
    if "\n" in data or "\r" in data:
        body = "".join("data: " + line + "\n" for line in _EOL_STR.split(data))
    else:
        body = "data: " + data + "\n"
    return (head + body + "\n").encode("utf-8")
