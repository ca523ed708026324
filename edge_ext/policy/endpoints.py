"""The closed table of what the edge answers: one handler per (method, path), and the phases it takes.

Anything not in the table is refused at the request headers (404 unknown path, 405 wrong method
with ``allow``), before any body is read. A handler states which phases it takes: a request
carrying a body to a handler that takes none is refused, and so is a body phase reaching it (the
processor fails closed whatever Envoy's filter config sends). Only handlers that take a client key
may ever reach a provider: health probes are answered without one, so they must never be routed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.base import ClientAPI
from edge_ext.apis.openai import OPENAI
from edge_ext.apis.responses import RESPONSES as RESPONSES_API
from edge_ext.errors import MethodNotAllowed, UnsupportedPath
from edge_ext.policy.state import Endpoint


@dataclass(frozen=True, slots=True)
class Handler:
    endpoint: Endpoint
    # The API the path speaks; None: errors are shaped by the caller's headers.
    api: ClientAPI | None = None
    body: bool = False  # takes the request body
    response: bool = False  # watches the provider's answer
    # Takes a client key (when keys are configured). A handler without one answers on its own
    # and is never routed to a provider.
    authenticated: bool = True
    # What a routed request asks of its provider (edge_ext.apis.operations): its parser, and the
    # providers that may serve it.
    operation: str = "chat"


CHAT_OPENAI = Handler(Endpoint.CHAT, OPENAI, body=True, response=True)
CHAT_ANTHROPIC = Handler(Endpoint.CHAT, ANTHROPIC, body=True, response=True)
RESPONSES = Handler(Endpoint.RESPONSES, RESPONSES_API, body=True, response=True)
MODELS = Handler(Endpoint.MODELS)
EMBEDDINGS = Handler(Endpoint.EMBEDDINGS, OPENAI, body=True, response=True, operation="embeddings")
COUNT_TOKENS = Handler(Endpoint.COUNT_TOKENS, ANTHROPIC, body=True, response=True, operation="count_tokens")
# Answered by Envoy's direct response once the processor let the headers through; Envoy's route
# sends no body here (ExtProcPerRoute), and a probe carrying one is refused anyway.
HEALTH = Handler(Endpoint.HEALTH, authenticated=False)

_HEALTH_METHODS = MappingProxyType({"GET": HEALTH, "HEAD": HEALTH})

TABLE = MappingProxyType({
    "/v1/chat/completions": MappingProxyType({"POST": CHAT_OPENAI}),
    "/v1/messages": MappingProxyType({"POST": CHAT_ANTHROPIC}),
    "/v1/models": MappingProxyType({"GET": MODELS}),
    "/v1/embeddings": MappingProxyType({"POST": EMBEDDINGS}),
    "/v1/messages/count_tokens": MappingProxyType({"POST": COUNT_TOKENS}),
    "/v1/responses": MappingProxyType({"POST": RESPONSES}),
    "/health": _HEALTH_METHODS,
    "/health/ready": _HEALTH_METHODS,
    # Envoy answers GET and HEAD itself (ext_proc off on that route); other methods reach us.
    "/health/live": _HEALTH_METHODS,
})


def dispatch(method: str, path: str) -> Handler:
    """The handler of ``method`` on ``path`` (query string already removed)."""
    methods = TABLE.get(path)
    if methods is None:
        raise UnsupportedPath(f"Unknown request URL: {method} {path}")
    handler = methods.get(method)
    if handler is None:
        allowed = ", ".join(methods)
        raise MethodNotAllowed(f"{method} is not allowed on {path}; use {allowed}", headers=(("allow", allowed),))
    return handler
