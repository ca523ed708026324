"""What a routing strategy sees and returns.

A strategy only ranks: it returns every candidate, most preferred first, and the router walks
that list skipping providers whose breaker refuses. So a strategy never has to know about
breakers, and a refused favourite degrades to the strategy's own second choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Protocol

from edge_ext.routing.latency import NO_LATENCY, LatencyView


class RandomLike(Protocol):
    """The one method of ``random.Random`` strategies use, so tests can inject a seeded one."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    upstream_model: str
    weight: float = 1.0
    # Lower is preferred, as in Envoy's priority levels; equal priorities keep config order.
    priority: int = 0
    # Per million tokens; None = unknown price.
    price_in: Decimal | None = None
    price_out: Decimal | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"candidate {self.provider}: weight must be a finite number >= 0")
        for name in ("price_in", "price_out"):
            price = getattr(self, name)
            if price is not None and not (price.is_finite() and price >= 0):
                raise ValueError(f"candidate {self.provider}: {name} must be >= 0")


@dataclass(frozen=True, slots=True)
class RouteContext:
    estimated_input_tokens: int
    max_output_tokens: int | None
    random: RandomLike
    latency: LatencyView = NO_LATENCY


class Strategy(Protocol):
    name: ClassVar[str]

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        """Every candidate, most preferred first."""
        ...


def pick_index(rng: RandomLike, n: int) -> int:
    """A uniform index in [0, n) from ``random()`` alone (min() guards a Random returning 1.0)."""
    return min(int(rng.random() * n), n - 1)
