"""Reserve, charge, settle: the policy with a fake clock and real (memory, disk) ledgers, for
answers that finish, answers cut short, answers that never come and refused requests."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from edge_ext.auth import Caller
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.cost.admission import BudgetStep
from edge_ext.cost.budget import BudgetSpec
from edge_ext.cost.calc import estimate_input_tokens
from edge_ext.cost.ledgers import DiskLedger
from edge_ext.cost.pricing import load_pricing
from edge_ext.cost.reserve import reservation
from edge_ext.errors import BudgetExceeded, TokenRateExceeded
from edge_ext.driver import Driver
from edge_ext.policy.accounting import Accounting
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy
from edge_ext.usage import Usage
from edge_ext.wiring import model_prices
from tests.fakes import MemoryLedger
from tests.outcome_world import unit_config

D = Decimal
PRICES = load_pricing()
MINI = PRICES.price("gpt-4o-mini")
HELLO = [{"role": "user", "content": "hello"}]


KEY = "sk-spend-unit-0001"
# The response phases' own accounting: a plain answer read by the processor (on the default
# 2-message path its outcome does the same, tests/unit/test_outcome.py).
CONFIG = unit_config(KEY, auth="  pii: block\n", rest="accounting: {fast_path: false}\n")
WALL = 1795737600.0 + 30  # 2026-11-27T00:00:30Z
DAY = "2026-11-27"
MINUTE = f"tpm:acme-key:{int(WALL // 60)}"


def make_policy(ledger, limit: str = "5", tpm: int = 100_000):
    config = parse_config(CONFIG)
    wall = FakeClock(WALL)
    budgets = BudgetStep([BudgetSpec("tenant", "acme", "daily", D(limit))], ledger, wall, {"acme-key": tpm},
                         prices=model_prices(config))
    policy = Policy(config, FakeClock(), {"oa": None, "an": None}, wall=wall, accounting=Accounting(PRICES),
                    budgets=True)
    return Driver(policy, config, budgets=budgets), budgets


@pytest.fixture(params=["memory", "disk"])
def ledger(request, tmp_path):
    return MemoryLedger() if request.param == "memory" else DiskLedger(str(tmp_path), wall=lambda: WALL)


def chat(model="gpt-4o-mini", content="hello", **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}], **extra}).encode()


async def start(driver, body: bytes):
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {KEY}"},
                              False)
    return st, await driver.run(st, policy.on_request_body(st, body))


def sse(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


OPENAI_WORDS = [sse({"choices": [{"index": 0, "delta": {"content": "lorem ipsum "}}]}) for _ in range(100)]
OPENAI_END = [sse({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 200}}), b"data: [DONE]\n\n"]
ANTHROPIC_START = sse({"type": "message_start", "message": {"usage": {"input_tokens": 8, "output_tokens": 1}}})
ANTHROPIC_WORDS = [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "dolor sit "}})
                   for _ in range(100)]


async def finish(driver, budgets, st):
    driver.end(st)
    await budgets.flush()


async def figures(ledger):
    return await ledger.totals("tenant:acme", DAY, WALL), await ledger.incr(MINUTE, 0, 120)


async def test_a_stream_cut_short_is_charged_what_it_delivered(ledger):
    driver, budgets = make_policy(ledger)
    policy = driver.policy
    st, decision = await start(driver, chat(stream=True))
    assert isinstance(decision, Continue) and decision.clear_route_cache
    held, _ = await figures(ledger)
    assert held.held > 0  # reserved before routing
    policy.on_response_headers(st, 200, {"content-type": "text/event-stream"})
    for chunk in OPENAI_WORDS:
        policy.on_response_body(st, chunk, False)
    await finish(driver, budgets, st)  # the client hung up: no end of stream, no usage
    totals, tokens = await figures(ledger)
    output = -(-len("lorem ipsum ") * 100 // 4)
    usage = Usage(input_tokens=estimate_input_tokens(json.loads(chat())), output_tokens=output)
    cost = (usage.input_tokens * MINI.input + output * MINI.output) / 1_000_000
    assert st.charge.estimated and st.charge.usage == usage
    assert totals.held == 0 and totals.spent == totals.estimated >= cost > 0
    assert tokens == usage.total


async def test_a_finished_stream_is_charged_its_report_and_the_reservation_released(ledger):
    driver, budgets = make_policy(ledger)
    policy = driver.policy
    st, _ = await start(driver, chat(stream=True))
    policy.on_response_headers(st, 200, {"content-type": "text/event-stream"})
    for chunk in OPENAI_WORDS + OPENAI_END[:-1]:
        policy.on_response_body(st, chunk, False)
    policy.on_response_body(st, OPENAI_END[-1], True)
    await finish(driver, budgets, st)
    totals, tokens = await figures(ledger)
    assert not st.charge.estimated and st.charge.usage == Usage(input_tokens=8, output_tokens=200)
    assert totals.held == 0 and totals.estimated == 0 and totals.spent == D("0.000122")  # 8 * 0.15 + 200 * 0.60, rounded up
    assert tokens == 208


async def test_an_anthropic_stream_cut_short_keeps_the_reported_input(ledger):
    driver, budgets = make_policy(ledger)
    policy = driver.policy
    st, _ = await start(driver, chat("claude-haiku-4-5", stream=True))
    policy.on_response_headers(st, 200, {"content-type": "text/event-stream"})
    for chunk in [ANTHROPIC_START, *ANTHROPIC_WORDS]:
        policy.on_response_body(st, chunk, False)
    await finish(driver, budgets, st)
    assert st.charge.estimated and st.charge.usage == Usage(input_tokens=8, output_tokens=250)
    assert (await figures(ledger))[1] == 258


@pytest.mark.parametrize("status, details, charged", [
    pytest.param(0, "", True, id="client-gone-before-the-answer"),
    pytest.param(503, "upstream_reset_before_response_started{remote_reset}", True, id="provider-reset"),
    pytest.param(504, "response_timeout", True, id="provider-timeout"),
    pytest.param(503, "upstream_reset_before_response_started{remote_connection_failure}", False, id="never-connected"),
    pytest.param(500, "via_upstream", False, id="provider-error"),
    pytest.param(429, "via_upstream", False, id="provider-rate-limit"),
])
async def test_an_answer_that_never_came_is_charged_its_prompt_when_the_provider_had_it(ledger, status, details, charged):
    driver, budgets = make_policy(ledger)
    policy = driver.policy
    st, _ = await start(driver, chat(content="word " * 400))
    if status:
        policy.on_response_headers(st, status, {"content-type": "application/json"}, details)
    await finish(driver, budgets, st)
    totals, tokens = await figures(ledger)
    assert totals.held == 0
    if charged:
        assert st.charge.estimated and st.charge.usage.output_tokens == 0 and tokens == st.charge.usage.input_tokens > 400
        assert totals.spent == totals.estimated > 0
    else:
        assert st.charge is None and totals.spent == 0 and tokens == 0


@pytest.mark.parametrize("body, code", [
    pytest.param(chat(content="my SSN is 123-45-6789"), "pii_detected", id="pii-blocked"),
    pytest.param(chat("gpt-9"), "model_not_found", id="refused-by-the-router"),
])
async def test_a_refused_request_has_released_its_reservation_when_it_is_answered(ledger, body, code):
    driver, budgets = make_policy(ledger)
    st, decision = await start(driver, body)
    assert isinstance(decision, Respond) and json.loads(decision.body)["error"]["code"] == code
    # Before the stream ends or any background write is awaited: the client's next request
    # (a smaller body after a 413) must not find the refused one's tokens still counted.
    totals, tokens = await figures(ledger)
    assert (totals.spent, totals.held, tokens) == (0, 0, 0)
    await finish(driver, budgets, st)
    totals, tokens = await figures(ledger)
    assert (totals.spent, totals.held, tokens) == (0, 0, 0)  # released once


async def test_concurrent_requests_overrun_by_at_most_one_reservation(ledger):
    body = chat(max_tokens=1000)
    held = reservation(json.loads(body), (MINI,)).usd
    driver, budgets = make_policy(ledger, limit=str(held * D("2.5")))
    policy = driver.policy
    results = await asyncio.gather(*(start(driver, body) for _ in range(10)))
    admitted = [st for st, decision in results if isinstance(decision, Continue)]
    refused = [json.loads(decision.body)["error"] for _, decision in results if isinstance(decision, Respond)]
    assert len(admitted) == 3 and len(refused) == 7
    assert all(e["code"] == "budget_exceeded" and "fully reserved" in e["message"] for e in refused)
    # Each admitted request answers with all it reserved: spend ends within one reservation of the limit.
    for st in admitted:
        policy.on_response_headers(st, 200, {"content-type": "application/json"})
        answer = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 8, "completion_tokens": 1000}}
        policy.on_response_body(st, json.dumps(answer).encode(), True)
        await finish(driver, budgets, st)
    totals, _ = await figures(ledger)
    assert totals.held == 0 and held * D("2.5") < totals.spent <= held * D("3.5")


async def test_budget_step_refusals_give_back_what_they_took(ledger):
    budgets = BudgetStep([BudgetSpec("tenant", "acme", "daily", D("0"))], ledger, FakeClock(WALL), {"acme-key": 100},
                         prices=lambda model: (MINI,))
    caller = Caller("acme-key", "acme", frozenset(), None)
    with pytest.raises(BudgetExceeded):
        await budgets.admit(caller, {"messages": HELLO, "max_tokens": 10}, "gpt-4o-mini")
    await budgets.flush()
    assert await ledger.incr(MINUTE, 0, 120) == 0  # the window's reservation was given back
    other = BudgetStep([], ledger, FakeClock(WALL), {"acme-key": 10}, prices=lambda model: (MINI,))
    assert await other.admit(caller, {"messages": HELLO, "max_tokens": 100}, "gpt-4o-mini") is not None
    with pytest.raises(TokenRateExceeded):
        await other.admit(caller, {"messages": HELLO, "max_tokens": 100}, "gpt-4o-mini")
