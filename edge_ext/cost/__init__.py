"""Cost accounting: prices as data, exact per-exchange cost, and budget rules.

Pure code: no I/O beyond reading the price table, no clock (time is always passed in), no Redis
(a ledger is injected). The intended flow per request::

    table = load_pricing(overrides=config_pricing)              # once, at start
    verdict = check(spec, await ledger.spent(spec.scope_id, period_key(spec.period, now)),
                    now_epoch=now)                               # before: refuse if exhausted
    result = cost_of(usage, upstream_model, table)               # after the response
    if result.priced:
        await ledger.add(spec.scope_id, period_key(spec.period, now), result.usd)

pricing.py holds the table, calc.py the arithmetic and estimates, budget.py the budget rules.
"""

from edge_ext.cost.budget import (
    BudgetLedger,
    BudgetSpec,
    BudgetVerdict,
    MemoryLedger,
    TokenRate,
    check,
    format_usd,
    period_key,
    resets_at,
)
from edge_ext.cost.calc import CostResult, cost, cost_of, estimate_input_tokens, requested_output_tokens
from edge_ext.cost.pricing import (
    Price,
    PriceOverride,
    PriceTable,
    PricingError,
    PricingOverrides,
    load_pricing,
)

__all__ = [
    "BudgetLedger",
    "BudgetSpec",
    "BudgetVerdict",
    "CostResult",
    "MemoryLedger",
    "Price",
    "PriceOverride",
    "PriceTable",
    "PricingError",
    "PricingOverrides",
    "TokenRate",
    "check",
    "cost",
    "cost_of",
    "estimate_input_tokens",
    "format_usd",
    "load_pricing",
    "period_key",
    "requested_output_tokens",
    "resets_at",
]
