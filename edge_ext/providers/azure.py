"""Azure OpenAI: the deployment is in the path, the API version in the query, the key in api-key.

The Responses API is served only on Azure's OpenAI-compatible v1 surface,
``/openai/v1/responses``: no deployment in the path (the deployment name is the body's
``model``, which model_map already sets) and no ``api-version`` (the v1 surface needs none; the
provider's ``api_version`` is the chat deployments' and would be refused there)."""

from __future__ import annotations

from urllib.parse import quote

from edge_ext.config.models import Provider
from edge_ext.providers.base import UpstreamRequest, path_of
from edge_ext.providers.headers import upstream_headers

# After the deployment's path.
PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}


class AzureOpenAIAdapter:
    kind = "azure_openai"
    wire_api = "openai"
    wire_apis = frozenset({"openai", "responses"})

    def upstream(self, provider: Provider, api_key: str, upstream_model: str, client_headers: dict[str, str],
                 operation: str = "chat", wire_api: str = "") -> UpstreamRequest:
        # The upstream model name is the deployment name (model_map maps public names onto it).
        path = f"{provider.path_prefix}/openai/v1/responses" if wire_api == "responses" else (
            f"{provider.path_prefix}/openai/deployments/{quote(upstream_model, safe='')}/{path_of(PATHS, provider, operation)}"
            f"?api-version={quote(provider.api_version or '', safe='')}"
        )
        auth = (("api-key", api_key),) if api_key else ()
        set_headers, remove = upstream_headers(client_headers, auth)
        return UpstreamRequest(path, set_headers, remove)
