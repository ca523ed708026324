"""Cheapest estimated request first; candidates without a price last, in config order."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar

from edge_ext.routing.strategies.base import Candidate, RouteContext

_PER_MILLION = Decimal(1_000_000)


def estimated_cost(candidate: Candidate, ctx: RouteContext, default_output_tokens: int = 256) -> Decimal | None:
    """The request's estimated price at this candidate, or None when its price is unknown."""
    if candidate.price_in is None or candidate.price_out is None:
        return None
    output = ctx.max_output_tokens if ctx.max_output_tokens is not None else default_output_tokens
    tokens_in = Decimal(max(ctx.estimated_input_tokens, 0))
    return (tokens_in * candidate.price_in + Decimal(max(output, 0)) * candidate.price_out) / _PER_MILLION


class CostOptimized:
    name: ClassVar[str] = "cost_optimized"

    def __init__(self, default_output_tokens: int = 256):
        # Without max_tokens the output length is unknown; a typical chat answer stands in so
        # output price still counts (it is often 4x the input price).
        if default_output_tokens < 0:
            raise ValueError("default_output_tokens must be >= 0")
        self.default_output_tokens = default_output_tokens

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        priced: list[tuple[Decimal, int, Candidate]] = []
        unpriced: list[Candidate] = []
        for index, c in enumerate(candidates):
            cost = estimated_cost(c, ctx, self.default_output_tokens)
            if cost is None:
                unpriced.append(c)
            else:
                priced.append((cost, index, c))
        priced.sort(key=lambda item: (item[0], item[1]))
        return [*(c for _, _, c in priced), *unpriced]
