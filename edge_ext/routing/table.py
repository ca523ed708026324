"""Which providers serve a public model name, in configured order."""

from __future__ import annotations

from dataclasses import dataclass

from edge_ext.config.models import Config, Provider


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str


class ModelTable:
    def __init__(self, config: Config):
        table: dict[str, list[Target]] = {}
        for provider in config.providers:
            for public in provider.public_models():
                table.setdefault(public, []).append(Target(provider, provider.upstream_model(public)))
        self._table = {model: tuple(targets) for model, targets in table.items()}

    def targets(self, model: str) -> tuple[Target, ...]:
        return self._table.get(model, ())

    def models(self) -> tuple[str, ...]:
        return tuple(self._table)
