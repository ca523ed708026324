"""The provider interface: where and how one upstream API is called.

Adapters know nothing of Envoy or gRPC, nor of translation: they name the API they speak
(``wire_api``), its path and its credentials; ``upstream_request`` puts them together with the
client headers that may pass. Adding a provider kind is one module here and
one line in ``registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_ext.config.models import Provider
from edge_ext.errors import InvalidRequest
from edge_ext.frozen import slot_init
from edge_ext.message import Headers
from edge_ext.providers.headers import upstream_headers


class UnsupportedOperation(InvalidRequest):
    """The provider's API has no such endpoint (embeddings at Anthropic): the client's request
    cannot be served by it, a 400."""


def path_of(paths: dict[str, str], provider: Provider, operation: str) -> str:
    path = paths.get(operation)
    if path is None:
        raise UnsupportedOperation(f"provider '{provider.name}' ({provider.kind}) has no {operation} API")
    return path


@slot_init
@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    set_headers: Headers
    remove_headers: tuple[str, ...] = ()


class ProviderAdapter(Protocol):
    kind: str
    wire_api: str  # the client API shape this provider speaks: "openai" | "anthropic"
    # Every API it serves as is: a request in one of them is sent untranslated, to that API's path.
    wire_apis: frozenset[str]

    def path(self, provider: Provider, upstream_model: str, operation: str, wire_api: str) -> str:
        """The path after the provider's ``path_prefix``, query included, for a body in
        ``wire_api`` (one of ``wire_apis``; empty: ``wire_api``). ``operation``: what is asked
        (edge_ext.apis.operations); one the provider's API does not have raises
        UnsupportedOperation (``path_of`` does)."""
        ...

    def credentials(self, provider: Provider, api_key: str, client_headers: dict[str, str]) -> Headers:
        """The headers the edge sets for this provider: its key (none when empty), and what else
        the operator decides (API version, the betas clients may ask for)."""
        ...


def upstream_request(adapter: ProviderAdapter, provider: Provider, api_key: str, upstream_model: str,
                     client_headers: dict[str, str], operation: str = "chat", wire_api: str = "") -> UpstreamRequest:
    """Path and headers for ``provider``. ``client_headers`` are all the request headers the
    processor saw; edge_ext.providers.headers decides which of them may pass (its docstring)."""
    path = adapter.path(provider, upstream_model, operation, wire_api)
    set_headers, remove = upstream_headers(client_headers, adapter.credentials(provider, api_key, client_headers))
    return UpstreamRequest(f"{provider.path_prefix}{path}", set_headers, remove)
