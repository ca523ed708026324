"""OpenAI and OpenAI-compatible upstreams (vLLM, Ollama, any server speaking the OpenAI API)."""

from __future__ import annotations

from edge_ext.config.models import Provider
from edge_ext.providers.base import UpstreamRequest, path_of
from edge_ext.providers.headers import upstream_headers

PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings", "responses": "/v1/responses"}


class OpenAIAdapter:
    kind = "openai"
    wire_api = "openai"
    wire_apis = frozenset({"openai", "responses"})

    def upstream(self, provider: Provider, api_key: str, upstream_model: str, client_headers: dict[str, str],
                 operation: str = "chat", wire_api: str = "") -> UpstreamRequest:
        path = path_of(PATHS, provider, "responses" if wire_api == "responses" else operation)
        # openai-organization / openai-project are not forwarded: the key's owner bills the default.
        auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        set_headers, remove = upstream_headers(client_headers, auth)
        return UpstreamRequest(f"{provider.path_prefix}{path}", set_headers, remove)


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
