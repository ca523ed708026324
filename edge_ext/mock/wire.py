"""HTTP wire helpers: JSON bodies, SSE framing, ids and connection drops.

Everything that decides *bytes on the socket* lives here so both dialects
frame SSE identically to the real services and so the fault behaviours
(abort mid-body, close before any response) are implemented once.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Sequence

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_rng = random.Random()

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def new_id(prefix: str, length: int = 24) -> str:
    """Provider-style opaque id (``chatcmpl-…``, ``msg_01…``, ``toolu_01…``)."""
    return prefix + "".join(_rng.choices(_ALPHABET, k=length))


def dumps(value: Any) -> str:
    """Compact JSON as both providers emit it (UTF-8, no ASCII escaping)."""
    return _encoder.encode(value)


def json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    # Content-Type goes in the header dict rather than ``content_type=`` to
    # skip aiohttp's per-response MIME parsing on the hot path.
    merged = {"Content-Type": JSON_CONTENT_TYPE, **headers}
    return web.Response(status=status, body=dumps(body).encode(), headers=merged)


def sse_data(payload: Any) -> bytes:
    """OpenAI framing: unnamed events, one ``data:`` line each."""
    return b"data: " + dumps(payload).encode() + b"\n\n"


def sse_event(event: str, payload: Any) -> bytes:
    """Anthropic framing: every event is named and repeats its type in data."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def drop_connection(request: web.Request) -> None:
    """Close the TCP connection so the client sees a truncated exchange.

    ``close()`` (FIN after the send buffer drains) rather than ``abort()``
    (RST) so bytes already written, e.g. the first SSE events, are delivered
    before the connection ends without the terminating zero-length chunk.
    """
    request.protocol.force_close()
    transport = request.transport
    if transport is not None:
        transport.close()


async def send_partial_json(
    request: web.Request, status: int, body: Any, headers: dict[str, str]
) -> web.StreamResponse:
    """Announce the full Content-Length, send half the body, then drop."""
    data = dumps(body).encode()
    response = web.StreamResponse(status=status, headers={"Content-Type": JSON_CONTENT_TYPE, **headers})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: max(1, len(data) // 2)])
    drop_connection(request)
    return response


async def send_sse(
    request: web.Request,
    headers: dict[str, str],
    frames: Sequence[bytes],
    *,
    chunk_delay_ms: int = 0,
    cut_after: int | None = None,
    drop: bool = False,
    error_frame: bytes | None = None,
) -> web.StreamResponse:
    """Stream pre-encoded SSE frames, one HTTP chunk per event.

    ``cut_after`` events are written before either dropping the connection
    (``drop=True``) or emitting ``error_frame`` and ending the stream the way
    providers do after an in-stream error (no further events, clean EOF).
    """
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache", **headers},
    )
    await response.prepare(request)
    delay = chunk_delay_ms / 1000.0
    # A cut never delivers the final frame ([DONE] / message_stop): a client
    # that saw the clean end would have no reason to notice the fault.
    limit = len(frames) if cut_after is None else min(cut_after, len(frames) - 1)
    try:
        for index in range(limit):
            if index and delay:
                await asyncio.sleep(delay)
            await response.write(frames[index])
        if cut_after is not None and drop:
            if delay:
                await asyncio.sleep(delay)
            drop_connection(request)
            return response
        if cut_after is not None and error_frame is not None:
            if delay:
                await asyncio.sleep(delay)
            await response.write(error_frame)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        # The client went away mid-stream; nothing left to deliver.
        pass
    return response
