"""OpenAI and OpenAI-compatible upstreams (vLLM, Ollama, any server speaking the OpenAI API)."""

from __future__ import annotations

from edge_ext.config.models import Provider
from edge_ext.message import Headers
from edge_ext.providers.base import path_of

PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings", "responses": "/v1/responses"}


class OpenAIAdapter:
    kind = "openai"
    wire_api = "openai"
    wire_apis = frozenset({"openai", "responses"})

    def path(self, provider: Provider, upstream_model: str, operation: str, wire_api: str) -> str:
        return path_of(PATHS, provider, "responses" if wire_api == "responses" else operation)

    def credentials(self, provider: Provider, api_key: str, client_headers: dict[str, str]) -> Headers:
        # openai-organization / openai-project are not forwarded: the key's owner bills the default.
        return (("authorization", f"Bearer {api_key}"),) if api_key else ()


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
