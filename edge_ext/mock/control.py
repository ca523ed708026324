"""The ``/_mock/*`` control API used by tests (never recorded, never faulted).

* ``GET /_mock/health``             -> ``{"status": "ok", "name": ...}``
* ``GET /_mock/requests``           -> list of recorded requests, oldest first
  (optional ``?path=/v1/messages`` filter and ``?limit=N`` for the last N)
* ``DELETE /_mock/requests``        -> clear records and counters
* ``GET /_mock/stats``              -> totals per path and per status
* ``POST /_mock/faults``            -> queue one fault object or a list of them
* ``GET /_mock/faults``             -> pending scripted faults
* ``DELETE /_mock/faults``          -> clear scripted faults
* ``POST /_mock/reset``             -> clear records, counters and faults
* ``POST /_mock/ratelimits``        -> send rate-limit headers from a new budget
  (``{"requests_limit", "requests_remaining", "tokens_limit", "tokens_remaining", "window_s"}``)
* ``GET /_mock/ratelimits``         -> the budget as it stands (null: no headers sent)
* ``DELETE /_mock/ratelimits``      -> stop sending rate-limit headers
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import wire
from .faults import FaultError
from .pipeline import STATE_KEY
from .ratelimits import RateLimitSpec, RateLimitWindow


def _ok(body: Any, status: int = 200) -> web.Response:
    return wire.json_response(status, body, {})


def _bad(message: str) -> web.Response:
    return wire.json_response(400, {"error": message}, {})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok({"status": "ok", "name": state.settings.name})


async def list_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    limit_raw = request.query.get("limit")
    limit = None
    if limit_raw is not None:
        try:
            limit = int(limit_raw)
        except ValueError:
            return _bad("limit must be an integer")
        if limit < 0:
            return _bad("limit must be >= 0")
    return _ok(state.recorder.list(path=request.query.get("path"), limit=limit))


async def clear_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok({"cleared": state.recorder.clear()})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok({
        "name": state.settings.name,
        **state.recorder.stats(),
        "faults_pending": len(state.faults),
    })


async def add_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        payload = json.loads(await request.text())
    except ValueError:
        return _bad("body must be JSON: a fault object or a list of them")
    try:
        added = state.faults.add(payload)
    except FaultError as exc:
        return _bad(str(exc))
    return _ok({"queued": [f.to_dict() for f in added], "pending": len(state.faults)})


async def list_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok(state.faults.snapshot())


async def clear_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok({"cleared": state.faults.clear()})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok({"requests_cleared": state.recorder.clear(), "faults_cleared": state.faults.clear()})


async def set_rate_limits(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        spec = RateLimitSpec.from_json(json.loads(await request.text()))
    except (ValueError, TypeError) as exc:
        return _bad(f"rate limits: {exc}")
    state.rate_limits = RateLimitWindow(spec)
    return _ok(state.rate_limits.snapshot())


async def get_rate_limits(request: web.Request) -> web.Response:
    window = request.app[STATE_KEY].rate_limits
    return _ok(window.snapshot() if window is not None else None)


async def clear_rate_limits(request: web.Request) -> web.Response:
    request.app[STATE_KEY].rate_limits = None
    return _ok(None)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/_mock/health", health)
    router.add_get("/_mock/requests", list_requests)
    router.add_delete("/_mock/requests", clear_requests)
    router.add_get("/_mock/stats", stats)
    router.add_post("/_mock/faults", add_faults)
    router.add_get("/_mock/faults", list_faults)
    router.add_delete("/_mock/faults", clear_faults)
    router.add_post("/_mock/reset", reset)
    router.add_post("/_mock/ratelimits", set_rate_limits)
    router.add_get("/_mock/ratelimits", get_rate_limits)
    router.add_delete("/_mock/ratelimits", clear_rate_limits)
