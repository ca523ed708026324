"""Cost accounting: prices as data, exact per-exchange cost, and budget rules.

Pure code: no I/O beyond reading the price table, no clock (time is always passed in), no Redis
(a ledger is injected). The intended flow per request::

    table = load_pricing(overrides=config_pricing)              # once, at start
    estimate = reservation(body, prices_of_the_group)           # before routing
    hold = Hold(spec.scope_id, period_key(spec.period, now), request_id, estimate.usd, expires)
    admitted, before = await ledger.reserve(hold, spec.limit_usd, now)   # atomic check and hold
    ...                                                          # the exchange
    result = cost_of(usage, upstream_model, table)               # usage reported, or estimated
    await ledger.settle(hold, result.usd or 0, estimated)        # the hold becomes the charge

pricing.py holds the table, calc.py the arithmetic and estimates, reserve.py what a request
reserves, estimate.py what an answer cut short is charged, budget.py the budget rules,
ledger_api.py what ledgers promise, ledgers.py and ledger_redis.py where spend is kept.
"""

from edge_ext.cost.budget import (
    BudgetLedger,
    BudgetSpec,
    BudgetVerdict,
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
    "Price",
    "PriceOverride",
    "PriceTable",
    "PricingError",
    "PricingOverrides",
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
