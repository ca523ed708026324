"""The 2-message path's policy, driven as the servicer drives it, for unit tests of outcomes
(tests/unit/test_outcome.py, test_outcome_batches.py): a config with a key, a tenant budget and a
tokens-per-minute limit, a fixed wall clock, and the request and outcome builders."""

from __future__ import annotations

import json
from decimal import Decimal

from edge_ext.auth import hash_key
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.cost.admission import BudgetStep
from edge_ext.cost.budget import BudgetSpec
from edge_ext.cost.pricing import load_pricing
from edge_ext.driver import Driver
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.decisions import Continue
from edge_ext.policy.engine import Policy
from edge_ext.policy.outcome import Outcome
from edge_ext.wiring import model_prices

def unit_config(key: str, auth: str = "", rest: str = "") -> str:
    """Two providers (OpenAI ``oa``, Anthropic ``an``) and one client key of tenant acme with a
    tokens-per-minute limit; ``auth`` adds lines under ``auth:``, ``rest`` top-level sections."""
    return f"""\
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:18080", models: [gpt-4o-mini]}}
  - {{name: an, kind: anthropic, base_url: "http://127.0.0.1:18081", models: [claude-haiku-4-5]}}
auth:
  keys: [{{id: acme-key, sha256: "{hash_key(key)}", tenant: acme, tokens_per_minute: 100000}}]
{auth}{rest}"""


KEY = "sk-outcome-unit-0001"
CONFIG = unit_config(KEY)
WALL = 1795737600.0 + 30  # 2026-11-27T00:00:30Z
DAY = "2026-11-27"
MINUTE = f"tpm:acme-key:{int(WALL // 60)}"
PRICES = load_pricing()
MINI = PRICES.price("gpt-4o-mini")


def make_policy(ledger, config: str = CONFIG):
    parsed = parse_config(config)
    wall = FakeClock(WALL)
    budgets = BudgetStep([BudgetSpec("tenant", "acme", "daily", Decimal("5"))], ledger, wall, {"acme-key": 100_000},
                         prices=model_prices(parsed))
    policy = Policy(parsed, FakeClock(), {"oa": None, "an": None}, wall=wall, accounting=Accounting(PRICES), budgets=True)
    return Driver(policy, parsed, budgets=budgets), budgets


def chat(model="gpt-4o-mini", **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hello " * 40}], **extra}).encode()


async def routed(driver, body: bytes, path: str = "/v1/chat/completions"):
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": path, "authorization": f"Bearer {KEY}"}, False)
    decision = await driver.run(st, policy.on_request_body(st, body))
    assert isinstance(decision, Continue)
    if decision.last:  # the servicer sent it, and ends the stream
        policy.handed_over(st)
    driver.end(st)
    return st, decision


def outcome_of(decision, **fields) -> Outcome:
    return Outcome(request_id="r1", route=dict(decision.metadata), **{"details": "via_upstream", "attempts": 1, **fields})
