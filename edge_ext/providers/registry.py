"""Provider kinds by name. A new kind is a new module and one line here."""

from __future__ import annotations

from edge_ext.providers.base import ProviderAdapter
from edge_ext.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    adapter.kind: adapter
    for adapter in (
        OpenAIAdapter(),
        OpenAICompatibleAdapter(),
    )
}


def adapter_for(kind: str) -> ProviderAdapter:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise NotImplementedError(f"provider kind {kind!r} has no adapter yet") from None
