"""Fastest time to first byte first, with a little exploration.

Ranking only by the EWMA starves a provider once it looks slow: nobody sends it traffic, so its
average never improves after it recovers. With probability ``epsilon`` a random other candidate
goes first to keep its measurement fresh, and a provider with no samples at all goes first so it
gets measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from edge_ext.routing.strategies.base import Candidate, RouteContext, pick_index


class LeastLatency:
    name: ClassVar[str] = "least_latency"

    def __init__(self, epsilon: float = 0.05):
        if not (0.0 <= epsilon <= 1.0 and math.isfinite(epsilon)):
            raise ValueError("epsilon must be in [0, 1]")
        self.epsilon = epsilon

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        if len(candidates) <= 1:
            return list(candidates)
        unmeasured: list[Candidate] = []
        measured: list[tuple[float, int, Candidate]] = []
        for index, c in enumerate(candidates):
            ewma = ctx.latency.ewma(c.provider)
            if ewma is None:
                unmeasured.append(c)
            else:
                measured.append((ewma, index, c))
        measured.sort(key=lambda item: (item[0], item[1]))
        ranked = [*unmeasured, *(c for _, _, c in measured)]
        if not unmeasured and self.epsilon > 0 and ctx.random.random() < self.epsilon:
            explore = ranked.pop(1 + pick_index(ctx.random, len(ranked) - 1))
            ranked.insert(0, explore)
        return ranked
