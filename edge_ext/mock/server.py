"""aiohttp application, in-process runner and CLI of the mock provider.

One process serves OpenAI, Azure OpenAI and Anthropic routes side by side;
``x-mock-provider: <name>`` on every response tells tests which of several
mock instances answered (e.g. after edge-ext routed or failed over).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sys
from dataclasses import dataclass, field

from aiohttp import web

from . import anthropic_api, control, embeddings_api, openai_api, responses_api
from .errors import ANTHROPIC, AZURE, OPENAI
from .faults import FaultQueue
from .pipeline import STATE_KEY, Exchange, MockState, begin
from .ratelimits import RateLimitWindow
from .recording import Recorder
from .settings import MockSettings, add_arguments

PROVIDER_HEADER = "x-mock-provider"
# Handlers in flight get this long (twice: to finish, then to unwind after
# cancellation) when the mock stops; tests should not wait out aiohttp's 60 s
# default on a deliberately slow stream.
SHUTDOWN_TIMEOUT_S = 0.25


def _is_anthropic(request: web.Request) -> bool:
    headers = request.headers
    return "anthropic-version" in headers or "x-api-key" in headers


async def models(request: web.Request) -> web.StreamResponse:
    # Both APIs list models at GET /v1/models; Anthropic clients always send
    # anthropic-version, which tells the two apart.
    if _is_anthropic(request):
        return await anthropic_api.list_models(request)
    return await openai_api.list_models(request)


async def not_found(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/_mock/"):
        return web.json_response({"error": f"unknown control endpoint {request.method} {request.path}"},
                                 status=404)
    if request.path.startswith("/openai/"):
        dialect = AZURE
    elif _is_anthropic(request):
        dialect = ANTHROPIC
    else:
        dialect = OPENAI
    ex = await begin(request, dialect)
    if not isinstance(ex, Exchange):
        return ex
    if dialect is ANTHROPIC:
        return ex.error(404, "Not found")
    if dialect is AZURE:
        return ex.error(404, "Resource not found", code="404")
    return ex.error(404, f"Invalid URL ({request.method} {request.path})", code=None)


async def _stamp_identity(request: web.Request, response: web.StreamResponse) -> None:
    state = request.app[STATE_KEY]
    response.headers[PROVIDER_HEADER] = state.settings.name
    if state.rate_limits is not None and request.method == "POST" and not request.path.startswith("/_mock/"):
        anthropic = request.path.startswith("/v1/messages") or _is_anthropic(request)
        response.headers.update(state.rate_limits.take(anthropic))


def build_app(settings: MockSettings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[STATE_KEY] = MockState(
        settings=settings,
        recorder=Recorder(settings.max_recorded),
        faults=FaultQueue(),
        fingerprint="fp_" + hashlib.sha256(settings.name.encode()).hexdigest()[:10],
        rate_limits=RateLimitWindow(settings.rate_limits) if settings.rate_limits is not None else None,
    )
    app.on_response_prepare.append(_stamp_identity)
    router = app.router
    router.add_post("/v1/chat/completions", openai_api.chat_completions)
    router.add_get("/v1/models", models)
    router.add_get("/v1/models/{model}", openai_api.get_model)
    router.add_post("/openai/deployments/{deployment}/chat/completions", openai_api.azure_chat_completions)
    router.add_post("/openai/v1/chat/completions", openai_api.azure_chat_completions)
    router.add_post("/v1/responses", responses_api.responses)
    router.add_post("/openai/v1/responses", responses_api.azure_responses)
    router.add_post("/v1/embeddings", embeddings_api.embeddings)
    router.add_post("/openai/deployments/{deployment}/embeddings", embeddings_api.azure_embeddings)
    router.add_post("/v1/messages", anthropic_api.messages)
    router.add_post("/v1/messages/count_tokens", anthropic_api.count_tokens)
    control.add_routes(app)
    # Registered last: aiohttp falls through to it for unknown paths and for
    # known paths hit with the wrong method, answering in the API's shape.
    router.add_route("*", "/{tail:.*}", not_found)
    return app


@dataclass
class MockHandle:
    """A running in-process mock; ``port`` is the bound port (useful with 0)."""

    settings: MockSettings
    app: web.Application
    runner: web.AppRunner
    host: str
    port: int
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> MockState:
        return self.app[STATE_KEY]

    async def stop(self) -> None:
        """Stop listening; streams still running get SHUTDOWN_TIMEOUT_S. Idempotent."""
        if not self._stopped:
            self._stopped = True
            await self.runner.cleanup()

    async def __aenter__(self) -> "MockHandle":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_mock(settings: MockSettings | None = None) -> MockHandle:
    """Start serving on ``settings.host:settings.port`` (port 0 = any free)."""
    settings = settings if settings is not None else MockSettings(port=0)
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    return MockHandle(settings=settings, app=app, runner=runner, host=settings.host, port=port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-ext-mock", description="Mock OpenAI/Azure/Anthropic provider for tests.")
    add_arguments(p)
    return p


async def _serve(settings: MockSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (ValueError, RuntimeError, NotImplementedError):
            # Not the main thread (e.g. main() embedded in a test thread):
            # the embedding code stops the process instead.
            pass
    try:
        handle = await start_mock(settings)
    except OSError as exc:
        print(f"edge-ext mock provider: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"edge-ext mock provider '{settings.name}' listening on {handle.url} "
        "(OpenAI /v1/chat/completions and /v1/embeddings, Anthropic /v1/messages)",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await handle.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT with the options of :func:`add_arguments`."""
    try:
        settings = MockSettings.from_env(
            host=args.host,
            port=args.port,
            name=args.name,
            latency_ms=args.latency_ms,
            openai_key=args.openai_key,
            anthropic_key=args.anthropic_key,
            azure_key=args.azure_key,
            max_recorded=args.max_recorded,
        )
    except ValueError as exc:
        print(f"edge-ext mock provider: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_serve(settings))
