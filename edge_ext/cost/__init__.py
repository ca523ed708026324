"""Cost accounting: prices as data, exact per-exchange cost, budget rules, and where spend is kept.

Two halves. Pure, no I/O and no clock (time is always passed in): pricing.py (the table, read
once at start), calc.py (the arithmetic and estimates), reserve.py (what a request reserves),
estimate.py (what an answer cut short is charged), budget.py (the budget rules), admitted.py
(what an admitted request holds, carried by the policy). I/O, async:
ledger_api.py (what ledgers promise), ledgers.py and ledger_redis.py (where spend is kept: SQLite
on disk, Redis), and admission.py (``BudgetStep``: reserve against the ledger before routing,
settle after), which the driver runs for the policy (edge_ext.driver). The flow per request::

    table = load_pricing(overrides=config_pricing)              # once, at start
    estimate = reservation(body, prices_of_the_group)           # before routing
    hold = Hold(spec.scope_id, period_key(spec.period, now), request_id, estimate.usd, expires)
    admitted, before = await ledger.reserve(hold, spec.limit_usd, now)   # atomic check and hold
    ...                                                          # the exchange
    result = cost_of(usage, upstream_model, table)               # usage reported, or estimated
    await ledger.settle(hold, result.usd or 0, estimated)        # the hold becomes the charge
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
