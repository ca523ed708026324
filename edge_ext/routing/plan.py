"""In-flight failover plans: the providers one request may try, in order, and the cluster that tries them.

Envoy retries only inside the cluster the route picked. A plan of two or more providers is
therefore an aggregate cluster whose members are the providers in attempt order: with the
``previous_priorities`` retry priority, attempt n goes to member n. A plan follows the group's
strategy order (the next cheapest, the next fastest, the next in rotation...), skipping providers
whose breaker is not closed, so any ordered selection of a group's providers may be one: all of
them, up to ``routing.max_attempts`` long, are rendered into Envoy's config ahead of time.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import permutations

from edge_ext.config.models import Config
from edge_ext.routing.table import ModelTable

# Provider names are [a-z0-9-]: "_" cannot occur inside one, so the name is unambiguous.
_PREFIX = "failover_"


def cluster_for(plan: tuple[str, ...], provider_cluster: str) -> str:
    """The Envoy cluster serving ``plan``: the provider's own when there is nothing to fail over to."""
    if len(plan) < 2:
        return provider_cluster
    return _PREFIX + "_".join(plan)


def group_members(config: Config) -> dict[str, tuple[str, ...]]:
    """Public model -> its providers, in config order."""
    table = ModelTable(config)
    return {model: tuple(t.provider.name for t in table.targets(model)) for model in table.models()}


def all_plans(config: Config) -> list[tuple[str, ...]]:
    """Every plan of two or more providers some request may follow, each once, in a stable order."""
    seen: dict[tuple[str, ...], None] = {}
    limit = config.routing.max_attempts
    groups = group_members(config)
    for members in groups.values():
        for plan in _plans(members, limit):
            seen.setdefault(plan, None)
    # A group with a refusal fallback tries one provider of it after its first choice.
    for model, fallback in (config.routing.refusal_fallback.items() if limit > 1 else ()):
        for first in groups.get(model, ()):
            for other in groups.get(fallback, ()):
                if other != first:
                    seen.setdefault((first, other), None)
    return list(seen)


def _plans(members: tuple[str, ...], limit: int) -> Iterator[tuple[str, ...]]:
    for first in members:
        rest = tuple(name for name in members if name != first)
        for size in range(1, min(limit - 1, len(rest)) + 1):
            for fallbacks in permutations(rest, size):
                yield (first, *fallbacks)
