"""Weighted random: a candidate comes first with probability weight / sum of weights.

The full order is weighted sampling without replacement (Efraimidis-Spirakis: sort by
log(u) / weight), so the fallbacks after the first pick are weighted too. One random number per
candidate; zero weights go last, in config order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from edge_ext.routing.strategies.base import Candidate, RouteContext

# random() may return exactly 0.0, whose log is undefined.
_TINY = 5e-324


class Weighted:
    name: ClassVar[str] = "weighted"

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        if len(candidates) <= 1:
            return list(candidates)
        keyed = []
        for index, c in enumerate(candidates):
            u = ctx.random.random()
            key = math.log(max(u, _TINY)) / c.weight if c.weight > 0 else -math.inf
            keyed.append((-key, index, c))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [c for _, _, c in keyed]
