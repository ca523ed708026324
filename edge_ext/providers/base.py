"""The provider interface: turn a routed client request into what one upstream API expects.

Adapters know nothing of Envoy or gRPC. Adding a provider kind is one module here and one line
in ``registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from edge_ext.config.models import Provider
from edge_ext.policy.decisions import Headers

# Client credentials in any style are stripped before the provider's own are set, so a
# client key can never reach a provider.
CLIENT_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A parsed chat request in the OpenAI shape."""

    body: dict[str, Any]
    raw: bytes
    model: str
    stream: bool


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    set_headers: Headers
    # None: forward the client's body untouched.
    body: bytes | None = None


class ProviderAdapter(Protocol):
    kind: str

    def chat_request(self, provider: Provider, api_key: str, request: ChatRequest) -> UpstreamRequest: ...
