"""A cached answer and its wire form (compressed when large)."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

_COMPRESS_ABOVE = 1024
_RAW, _ZLIB = b"r", b"z"


@dataclass(frozen=True, slots=True)
class Entry:
    """A complete, successful answer in the client's API shape as a non-streamed JSON body.

    Streams are stored in this form too (accumulated), so a streaming and a non-streaming request
    with the same content share one entry; a stream hit is replayed from it.
    """

    body: bytes
    stored_at: float  # wall-clock epoch seconds (an entry outlives processes)
    api: str
    provider: str

    def encode(self) -> bytes:
        head = json.dumps({"t": self.stored_at, "a": self.api, "p": self.provider}, separators=(",", ":")).encode()
        payload = head + b"\n" + self.body
        if len(payload) > _COMPRESS_ABOVE:
            return _ZLIB + zlib.compress(payload, 1)
        return _RAW + payload

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        """None for anything unreadable: a corrupt entry is a miss, never an error."""
        try:
            payload = zlib.decompress(data[1:]) if data[:1] == _ZLIB else data[1:] if data[:1] == _RAW else None
            if payload is None:
                return None
            head, _, body = payload.partition(b"\n")
            meta = json.loads(head)
            return cls(body=body, stored_at=float(meta["t"]), api=str(meta["a"]), provider=str(meta["p"]))
        except (ValueError, KeyError, TypeError, zlib.error):
            return None

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at))
