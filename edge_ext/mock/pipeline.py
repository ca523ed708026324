"""The request pipeline shared by every API endpoint.

Order matters and mirrors a real provider seen through a flaky network:
record the request (so tests can count attempts, including failed ones),
resolve faults, wait the configured latency *before* any header is sent,
then either vanish (drop before response), fail with the injected status,
or hand over to the endpoint, which authenticates and validates next.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Unpack

from aiohttp import web

from . import wire
from .errors import Dialect, ErrorFields
from .faults import DROP_BEFORE_RESPONSE, DROP_MID_STREAM, FaultError, FaultQueue, FaultSpec, parse_headers
from .ratelimits import RateLimitWindow
from .recording import Recorder, headers_dict
from .settings import MockSettings

_NO_FAULT = FaultSpec()


@dataclass(slots=True)
class MockState:
    """Mutable per-app state: what was recorded and what is scripted."""

    settings: MockSettings
    recorder: Recorder
    faults: FaultQueue
    fingerprint: str
    started: float = field(default_factory=time.time)
    rate_limits: RateLimitWindow | None = None


STATE_KEY: web.AppKey[MockState] = web.AppKey("edge_ext_mock_state", MockState)


@dataclass(slots=True)
class Exchange:
    """One API request in flight, with its fault plan and record entry."""

    request: web.Request
    state: MockState
    dialect: Dialect
    entry: dict[str, Any]
    headers: dict[str, str]
    body: Any
    body_invalid: bool
    fault: FaultSpec
    request_id: str

    @property
    def settings(self) -> MockSettings:
        return self.state.settings

    def response_headers(self) -> dict[str, str]:
        return self.dialect.base_headers(self.request_id)

    def error(self, status: int, message: str | None = None, *, extra_headers: dict[str, str] | None = None,
              **fields: Unpack[ErrorFields]) -> web.Response:
        self.state.recorder.finish(self.entry, status, "error")
        return self.dialect.error_response(status, message, request_id=self.request_id, extra_headers=extra_headers, **fields)

    async def json(self, body: Any, status: int = 200) -> web.StreamResponse:
        headers = self.response_headers()
        if self.fault.drop == DROP_MID_STREAM:
            self.state.recorder.finish(self.entry, status, "dropped-mid-stream")
            return await wire.send_partial_json(self.request, status, body, headers)
        self.state.recorder.finish(self.entry, status, "ok")
        return wire.json_response(status, body, headers)

    async def sse(self, frames: Sequence[bytes]) -> web.StreamResponse:
        fault = self.fault
        drop = fault.drop == DROP_MID_STREAM
        error_frame = None
        if fault.stream_error is not None and not drop:
            error_frame = self.dialect.stream_error_frame(fault.stream_error, self.request_id)
        cut = fault.cut_after if (drop or error_frame is not None) else None
        outcome = "dropped-mid-stream" if drop else "stream-error" if error_frame else "ok"
        self.state.recorder.finish(self.entry, 200, outcome)
        return await wire.send_sse(
            self.request,
            self.response_headers(),
            frames,
            chunk_delay_ms=fault.chunk_delay_ms,
            cut_after=cut,
            drop=drop,
            error_frame=error_frame,
        )


# An endpoint's precondition: None to go on, else the refusal to send.
Check = Callable[[Exchange], web.Response | None]


def bearer_token(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def begin(request: web.Request, dialect: Dialect, *checks: Check) -> Exchange | web.StreamResponse:
    """Run the common prelude, then the endpoint's ``checks`` in order (as the
    service authenticates only after the network had its say); returns the
    exchange, or the final response when a fault, an unreadable body or a
    check already decided the outcome."""
    state = request.app[STATE_KEY]
    headers = headers_dict(request.headers)
    request_id = dialect.new_request_id()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        entry = state.recorder.record(
            method=request.method, path=request.path, query=request.query_string,
            headers=headers, body="", parsed=None, api=dialect.name,
        )
        state.recorder.finish(entry, 413, "error")
        limit = state.settings.max_body_bytes
        return dialect.error_response(
            413, f"Request exceeds the maximum allowed number of bytes ({limit}).", request_id=request_id
        )
    text = raw.decode("utf-8", "replace")
    parsed: Any = None
    invalid = False
    if text.strip():
        try:
            parsed = json.loads(text)
        except ValueError:
            invalid = True
    entry = state.recorder.record(
        method=request.method, path=request.path, query=request.query_string,
        headers=headers, body=text, parsed=parsed, api=dialect.name,
    )
    scripted = state.faults.take_scripted(request.path)
    # Scripted x-mock-* headers act as if the request carried them; the record keeps what arrived.
    acting = {**scripted.headers, **headers} if scripted is not None else headers
    exchange = Exchange(request, state, dialect, entry, acting, parsed, invalid, _NO_FAULT, request_id)

    fault = scripted.spec if scripted is not None and scripted.spec != _NO_FAULT else _NO_FAULT
    try:
        requested = parse_headers(acting)
    except FaultError as exc:
        return exchange.error(400, f"mock: {exc}")
    if requested is not None:
        fault = fault.override(requested)
    exchange.fault = fault
    if fault is not _NO_FAULT:
        entry["fault"] = fault.to_dict()

    latency_ms = state.settings.latency_ms + fault.latency_ms
    if latency_ms:
        await asyncio.sleep(latency_ms / 1000.0)
    if fault.drop == DROP_BEFORE_RESPONSE:
        state.recorder.finish(entry, None, "dropped-before-response")
        wire.drop_connection(request)
        # aiohttp still wants a response object; writing it fails quietly on
        # the closed transport, so the client sees EOF with no status line.
        return web.Response(status=204)
    if fault.status is not None:
        retry_after = fault.retry_after_header()
        return exchange.error(
            fault.status, extra_headers={"retry-after": retry_after} if retry_after is not None else None
        )
    for check in checks:
        if (refusal := check(exchange)) is not None:
            return refusal
    return exchange
