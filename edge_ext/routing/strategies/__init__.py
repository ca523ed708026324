"""Routing strategies by name. A new strategy is a new module here plus one REGISTRY line."""

from __future__ import annotations

from typing import Any

from edge_ext.routing.strategies.base import Candidate, RandomLike, RouteContext, Strategy
from edge_ext.routing.strategies.cost_optimized import CostOptimized, estimated_cost
from edge_ext.routing.strategies.failover import Failover
from edge_ext.routing.strategies.least_latency import LeastLatency
from edge_ext.routing.strategies.round_robin import RoundRobin
from edge_ext.routing.strategies.weighted import Weighted

REGISTRY: dict[str, type[Strategy]] = {
    RoundRobin.name: RoundRobin,
    Weighted.name: Weighted,
    Failover.name: Failover,
    LeastLatency.name: LeastLatency,
    CostOptimized.name: CostOptimized,
}


def create(name: str, **options: Any) -> Strategy:
    """A fresh strategy (stateful ones keep per-instance state); options go to its constructor."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return cls(**options)


__all__ = [
    "REGISTRY", "Candidate", "CostOptimized", "Failover", "LeastLatency", "RandomLike", "RouteContext",
    "RoundRobin", "Strategy", "Weighted", "create", "estimated_cost",
]
