"""Azure OpenAI: the deployment is in the path, the API version in the query, the key in api-key.

The Responses API is served only on Azure's OpenAI-compatible v1 surface,
``/openai/v1/responses``: no deployment in the path (the deployment name is the body's
``model``, which model_map already sets) and no ``api-version`` (the v1 surface needs none; the
provider's ``api_version`` is the chat deployments' and would be refused there)."""

from __future__ import annotations

from urllib.parse import quote

from edge_ext.config.models import Provider
from edge_ext.message import Headers
from edge_ext.providers.base import path_of

# After the deployment's path.
PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}


class AzureOpenAIAdapter:
    kind = "azure_openai"
    wire_api = "openai"
    wire_apis = frozenset({"openai", "responses"})

    def path(self, provider: Provider, upstream_model: str, operation: str, wire_api: str) -> str:
        if wire_api == "responses":
            return "/openai/v1/responses"
        # The upstream model name is the deployment name (model_map maps public names onto it).
        return (f"/openai/deployments/{quote(upstream_model, safe='')}/{path_of(PATHS, provider, operation)}"
                f"?api-version={quote(provider.api_version or '', safe='')}")

    def credentials(self, provider: Provider, api_key: str, client_headers: dict[str, str]) -> Headers:
        return (("api-key", api_key),) if api_key else ()
