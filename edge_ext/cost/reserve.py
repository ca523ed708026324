"""What a request reserves before it is routed: an upper estimate of its tokens and cost.

Budgets and tokens-per-minute limits admit a request against what is spent *and* what requests
in flight have reserved; the reservation is replaced by the real charge when the request ends.
The estimate, for a request body of either API:

* input tokens: :func:`~edge_ext.cost.calc.estimate_input_tokens` (characters / 4 plus message
  framing; it under-counts code and non-Latin text by up to about 2x);
* output tokens: the request's own cap (``max_completion_tokens``, ``max_output_tokens`` or
  ``max_tokens``), at most the model's ``max_output_tokens`` from the price table; without a cap,
  the model's ``max_output_tokens``; for a model whose limit is unknown,
  :data:`DEFAULT_OUTPUT_TOKENS`;
* USD: at the dearest of the prices of the upstream models that may serve the request (a model
  group routes to any of them), every input token at the dearer of the input and cache-write
  prices. An unpriced model reserves no USD (its answers are counted as unpriced, not charged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from edge_ext.cost.calc import cost, estimate_input_tokens, requested_output_tokens
from edge_ext.cost.pricing import Price
from edge_ext.usage import Usage

__all__ = ["DEFAULT_OUTPUT_TOKENS", "Reservation", "reservation"]

DEFAULT_OUTPUT_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class Reservation:
    input_tokens: int
    output_tokens: int
    usd: Decimal

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _output_tokens(body: dict[str, Any], prices: Sequence[Price], default: int) -> int:
    limits = [p.max_output_tokens for p in prices if p.max_output_tokens]
    ceiling = max(limits) if limits else None
    cap = requested_output_tokens(body)
    if cap is None:
        return ceiling if ceiling is not None else default
    return min(cap, ceiling) if ceiling is not None else cap


def reservation(body: dict[str, Any], prices: Sequence[Price], default_output: int = DEFAULT_OUTPUT_TOKENS) -> Reservation:
    """The reservation of a request ``body`` that any model priced in ``prices`` may serve."""
    body = body if isinstance(body, dict) else {}
    input_tokens = estimate_input_tokens(body)
    output_tokens = _output_tokens(body, prices, default_output)
    usd = Decimal(0)
    for price in prices:
        for usage in (Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                      Usage(cache_write_tokens=input_tokens, output_tokens=output_tokens)):
            usd = max(usd, cost(usage, price))
    return Reservation(input_tokens, output_tokens, usd)
