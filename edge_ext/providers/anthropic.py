"""Anthropic's Messages API."""

from __future__ import annotations

from edge_ext.config.models import Provider
from edge_ext.message import Headers
from edge_ext.providers.base import path_of
from edge_ext.providers.headers import beta_tokens


PATHS = {"chat": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}


class AnthropicAdapter:
    kind = "anthropic"
    wire_api = "anthropic"
    wire_apis = frozenset({"anthropic"})

    def path(self, provider: Provider, upstream_model: str, operation: str, wire_api: str) -> str:
        return path_of(PATHS, provider, operation)

    def credentials(self, provider: Provider, api_key: str, client_headers: dict[str, str]) -> Headers:
        # The API version is the operator's, never the client's: it changes what the API does on
        # the edge's key. Betas likewise, except those the provider's config lets clients ask for.
        headers = [("anthropic-version", provider.anthropic_version)]
        allowed = set(provider.anthropic_betas)
        betas = [t for t in beta_tokens(client_headers.get("anthropic-beta", "")) if t in allowed]
        if betas:
            headers.append(("anthropic-beta", ",".join(betas)))
        if api_key:
            headers.insert(0, ("x-api-key", api_key))
        return tuple(headers)
