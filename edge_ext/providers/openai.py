"""OpenAI and OpenAI-compatible upstreams (vLLM, Ollama, any server speaking the OpenAI API)."""

from __future__ import annotations

import json

from edge_ext.config.models import Provider
from edge_ext.providers.base import ChatRequest, UpstreamRequest


class OpenAIAdapter:
    kind = "openai"

    def chat_request(self, provider: Provider, api_key: str, request: ChatRequest) -> UpstreamRequest:
        upstream_model = provider.upstream_model(request.model)
        body = None
        if upstream_model != request.model:
            patched = dict(request.body, model=upstream_model)
            body = json.dumps(patched, separators=(",", ":"), ensure_ascii=False).encode()
        headers = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        return UpstreamRequest(f"{provider.path_prefix}/v1/chat/completions", headers, body)


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
