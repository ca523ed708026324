"""Pick the provider for a model. Strategies and breakers plug in here."""

from __future__ import annotations

from dataclasses import dataclass

from edge_ext.config.models import Config, Provider
from edge_ext.errors import ModelNotFound, ProviderKeyMissing
from edge_ext.routing.table import ModelTable


@dataclass(frozen=True, slots=True)
class Chosen:
    provider: Provider
    upstream_model: str
    api_key: str


class Router:
    def __init__(self, config: Config, keys: dict[str, str | None]):
        self._table = ModelTable(config)
        self._keys = keys

    def models(self) -> tuple[str, ...]:
        return self._table.models()

    def pick(self, model: str) -> Chosen:
        targets = self._table.targets(model)
        if not targets:
            raise ModelNotFound(f"The model '{model}' does not exist or is not served here", param="model")
        target = targets[0]
        provider = target.provider
        key = self._keys.get(provider.name)
        if (provider.api_key_env or provider.api_key_file) and not key:
            raise ProviderKeyMissing(f"provider '{provider.name}' has no API key configured")
        return Chosen(provider, target.upstream_model, key or "")
