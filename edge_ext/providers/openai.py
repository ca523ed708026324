"""OpenAI and OpenAI-compatible upstreams (vLLM, Ollama, any server speaking the OpenAI API)."""

from __future__ import annotations

from edge_ext.config.models import Provider
from edge_ext.providers.base import UpstreamRequest, credentials

# Headers only Anthropic understands; an OpenAI upstream has no use for them.
_ANTHROPIC_ONLY = ("anthropic-version", "anthropic-beta")


class OpenAIAdapter:
    kind = "openai"
    wire_api = "openai"

    def upstream(self, provider: Provider, api_key: str, upstream_model: str, client_headers: dict[str, str]) -> UpstreamRequest:
        auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        set_headers, remove = credentials(auth, _ANTHROPIC_ONLY)
        return UpstreamRequest(f"{provider.path_prefix}/v1/chat/completions", set_headers, remove)


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
