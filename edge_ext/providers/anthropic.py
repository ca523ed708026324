"""Anthropic's Messages API."""

from __future__ import annotations

from edge_ext.config.models import Provider
from edge_ext.providers.base import UpstreamRequest, credentials


class AnthropicAdapter:
    kind = "anthropic"
    wire_api = "anthropic"

    def upstream(self, provider: Provider, api_key: str, upstream_model: str, client_headers: dict[str, str]) -> UpstreamRequest:
        # A client of the Anthropic API may pin a newer version or beta features; keep its choice.
        version = client_headers.get("anthropic-version") or provider.anthropic_version
        headers = (("anthropic-version", version),)
        if api_key:
            headers = (("x-api-key", api_key), *headers)
        set_headers, remove = credentials(headers)
        return UpstreamRequest(f"{provider.path_prefix}/v1/messages", set_headers, remove)
