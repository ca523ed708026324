"""In-flight failover plans: the providers one request may try, in order, and the cluster that tries them.

Envoy retries only inside the cluster the route picked. A plan of two or more providers is
therefore an aggregate cluster whose members are the providers in attempt order: with the
``previous_priorities`` retry priority, attempt n goes to member n. The first member is the
strategy's pick; the others follow the group's failover order (priority, then config order),
skipping providers whose breaker is not closed. That keeps the set of plans finite, so every
cluster a request can name is rendered into Envoy's config ahead of time.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

from edge_ext.config.models import Config, Provider
from edge_ext.routing.table import ModelTable

# Provider names are [a-z0-9-]: "_" cannot occur inside one, so the name is unambiguous.
_PREFIX = "failover_"


def failover_order(providers: tuple[Provider, ...] | list[Provider]) -> tuple[str, ...]:
    """Names in the order fallbacks are tried: lower priority first, then config order."""
    ranked = sorted(enumerate(providers), key=lambda item: (item[1].priority, item[0]))
    return tuple(p.name for _, p in ranked)


def cluster_for(plan: tuple[str, ...], provider_cluster: str) -> str:
    """The Envoy cluster serving ``plan``: the provider's own when there is nothing to fail over to."""
    if len(plan) < 2:
        return provider_cluster
    return _PREFIX + "_".join(plan)


def group_orders(config: Config) -> dict[str, tuple[str, ...]]:
    """Public model -> its providers in failover order."""
    table = ModelTable(config)
    return {model: failover_order([t.provider for t in table.targets(model)]) for model in table.models()}


def all_plans(config: Config) -> list[tuple[str, ...]]:
    """Every plan of two or more providers some request may follow, each once, in a stable order."""
    seen: dict[tuple[str, ...], None] = {}
    limit = config.routing.max_attempts
    for order in group_orders(config).values():
        for plan in _plans(order, limit):
            seen.setdefault(plan, None)
    return list(seen)


def _plans(order: tuple[str, ...], limit: int) -> Iterator[tuple[str, ...]]:
    for first in order:
        rest = tuple(name for name in order if name != first)
        # Any subset of the fallbacks may be closed at the moment of routing; combinations keep
        # the failover order.
        for size in range(1, min(limit - 1, len(rest)) + 1):
            for fallbacks in combinations(rest, size):
                yield (first, *fallbacks)
