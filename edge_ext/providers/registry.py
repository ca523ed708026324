"""Provider kinds by name. A new kind is a new module and one line here."""

from __future__ import annotations

from edge_ext.providers.anthropic import AnthropicAdapter
from edge_ext.providers.azure import AzureOpenAIAdapter
from edge_ext.providers.base import ProviderAdapter
from edge_ext.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    adapter.kind: adapter
    for adapter in (
        OpenAIAdapter(),
        OpenAICompatibleAdapter(),
        AzureOpenAIAdapter(),
        AnthropicAdapter(),
    )
}


def adapter_for(kind: str) -> ProviderAdapter:
    return ADAPTERS[kind]
