"""The 2-message path in the policy: which requests end their stream after the body, what they
hand over in metadata, and what their outcome does when it arrives (fake clocks, real ledgers)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge_ext.cost.admission import Admission
from edge_ext.cost.ledgers import DiskLedger
from edge_ext.policy.outcome import Outcome, usage_of
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.ratelimits import Standing
from edge_ext.usage import Usage
from tests.fakes import MemoryLedger
from tests.outcome_world import CONFIG, DAY, KEY, MINI, MINUTE, WALL, chat, make_policy, outcome_of, routed

@pytest.fixture(params=["memory", "disk"])
def ledger(request, tmp_path):
    return MemoryLedger() if request.param == "memory" else DiskLedger(str(tmp_path), wall=lambda: WALL)


async def figures(ledger):
    return await ledger.totals("tenant:acme", DAY, WALL), await ledger.incr(MINUTE, 0, 120)


@pytest.mark.parametrize("body, last", [
    pytest.param(chat(), True, id="plain-same-api"),
    pytest.param(chat(stream=True), False, id="stream"),
    pytest.param(chat("claude-haiku-4-5"), False, id="translated"),
])
async def test_only_answers_passed_through_end_the_stream_after_the_body(ledger, body, last):
    driver, _ = make_policy(ledger)
    st, decision = await routed(driver, body)
    metadata = dict(decision.metadata)
    assert decision.last is last and ("outcome" in metadata) is last
    held, tokens = await figures(ledger)
    # Handed over or not, nothing is settled yet: the reservation waits for the outcome.
    if last:
        assert held.held > 0 and tokens > 0 and st.admission is None and not st.breaker_pending
        assert Admission.from_metadata(metadata).holds[0].due


async def test_the_hand_over_reuses_the_input_estimate_worked_out_at_admission(ledger, monkeypatch):
    import json

    from edge_ext.cost import calc, reserve
    from edge_ext.policy import outcome

    estimates = []

    def counted(body):
        estimates.append(calc.estimate_input_tokens(body))
        return estimates[-1]

    monkeypatch.setattr(reserve, "estimate_input_tokens", counted)
    monkeypatch.setattr(outcome, "estimate_input_tokens", counted)
    driver, _ = make_policy(ledger)
    body = chat()
    _, decision = await routed(driver, body)
    assert decision.last and estimates == [calc.estimate_input_tokens(json.loads(body))]  # once, at admission
    assert dict(decision.metadata)["est_in"] == str(estimates[0])


async def test_a_last_reply_that_never_left_settles_at_stream_end(ledger):
    """A stream cancelled before the body reply went out: no outcome will come, so it settles at
    stream end like any routed request left without an answer (its prompt, estimated), nothing is
    left for a hold's expiry to charge in full, and the probe slot is given back at once."""
    driver, budgets = make_policy(ledger)
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {KEY}"}, False)
    decision = await driver.run(st, policy.on_request_body(st, chat()))
    assert decision.last
    driver.end(st)  # cancelled at the yield: handed_over never called
    await budgets.flush()
    totals, _ = await figures(ledger)
    assert totals.held == 0 and totals.spent == totals.estimated and not st.breaker_pending
    assert st.charge.estimated and st.charge.usage.output_tokens == 0


def test_a_cost_header_keeps_the_response_phase(ledger):
    driver, _ = make_policy(ledger, CONFIG + "accounting: {cost_header: true}\n")
    policy = driver.policy
    assert not policy.fast_path


@pytest.mark.parametrize("fields, charge", [
    pytest.param({"status": 200, "usage": {"prompt_tokens": 45.0, "completion_tokens": 7.0}, "upstream_ttfb_s": 0.2},
                 Usage(input_tokens=45, output_tokens=7), id="reported-usage"),
    pytest.param({"status": 200, "response_bytes": 400}, "estimated", id="answer-without-usage"),
    pytest.param({"status": 200, "response_bytes": 400, "usage": {"prompt_tokens": 45.0, "completion_tokens": 1e45}},
                 "estimated", id="implausible-usage-is-no-report"),
    pytest.param({"status": 500}, None, id="provider-error-not-billed"),
    pytest.param({"status": 503, "details": "upstream_reset_before_response_started{remote_reset}"}, "estimated",
                 id="provider-reset"),
    pytest.param({"status": 0, "details": "downstream_remote_disconnect"}, "estimated", id="client-gone"),
    pytest.param({"status": 503, "details": "upstream_reset_before_response_started{remote_connection_failure}",
                  "attempts": 1}, None, id="never-connected"),
])
async def test_an_outcome_settles_what_the_response_phases_did(ledger, fields, charge):
    driver, budgets = make_policy(ledger)
    _, decision = await routed(driver, chat())
    st = driver.outcome(outcome_of(decision, **fields))
    await budgets.flush()
    totals, tokens = await figures(ledger)
    assert totals.held == 0
    if charge is None:
        assert st.charge is None and totals.spent == 0 and tokens == 0
    elif charge == "estimated":
        assert st.charge.estimated and totals.spent == totals.estimated > 0 and tokens == st.charge.usage.total > 0
    else:
        assert not st.charge.estimated and st.charge.usage == charge and tokens == charge.total
        # 45 x $0.15 + 7 x $0.60 per million, rounded up to the micro-dollar.
        assert totals.spent == Decimal("0.000011") and MINI.input == Decimal("0.15")


async def test_a_batch_of_failures_opens_the_breaker_in_order(ledger):
    driver, _ = make_policy(ledger)  # the default breaker: 5 failures in a row open it
    policy = driver.policy
    decisions = [(await routed(driver, chat()))[1] for _ in range(6)]
    for decision in decisions[:4]:
        driver.outcome(outcome_of(decision, status=500))
    assert policy.router.states()["oa"] is BreakerState.CLOSED
    driver.outcome(outcome_of(decisions[4], status=502))
    assert policy.router.states()["oa"] is BreakerState.OPEN
    driver.outcome(outcome_of(decisions[5], status=200))  # arrived after: counted, still open
    assert policy.router.states()["oa"] is BreakerState.OPEN


LIMITS = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-limit-requests": "100", "x-ratelimit-reset-requests": "30s"}


@pytest.mark.parametrize("fields, standing", [
    pytest.param({"status": 200, "limits": LIMITS}, Standing.EXHAUSTED, id="answer"),
    pytest.param({"status": 429, "limits": LIMITS, "retry_after": "30"}, Standing.EXHAUSTED, id="its-429"),
    pytest.param({"status": 200, "limits": {**LIMITS, "x-ratelimit-remaining-requests": "5"}}, Standing.LOW, id="low"),
    pytest.param({"status": 503, "limits": LIMITS, "details": "upstream_reset_before_response_started{remote_reset}"},
                 Standing.UNKNOWN, id="envoys-own-reply"),
])
async def test_an_outcomes_rate_limit_headers_reach_the_router(ledger, fields, standing):
    driver, _ = make_policy(ledger)
    _, decision = await routed(driver, chat())
    driver.outcome(outcome_of(decision, **fields))
    verdict = driver.policy.router.verdict("oa")
    assert verdict.standing is standing
    if standing is not Standing.UNKNOWN:
        assert verdict.until == WALL + 30


async def test_the_response_phase_reads_the_rate_limit_headers(ledger):
    driver, _ = make_policy(ledger)
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {KEY}"}, False)
    assert not (await driver.run(st, policy.on_request_body(st, chat(stream=True)))).last
    policy.on_response_headers(st, 200, {":status": "200", "content-type": "text/event-stream", **LIMITS})
    assert policy.router.verdict("oa").standing is Standing.EXHAUSTED


async def test_an_entry_that_is_not_a_handed_over_request_is_ignored(ledger):
    driver, _ = make_policy(ledger)
    policy = driver.policy
    assert driver.outcome(Outcome(request_id="x", status=500, details="via_upstream", route={"provider": "oa"})) is None
    assert policy.router.states()["oa"] is BreakerState.CLOSED


@pytest.mark.parametrize("api, extracted, usage", [
    pytest.param("openai", {"prompt_tokens": 10.0, "completion_tokens": 5.0, "cached_tokens": 4.0, "reasoning_tokens": 2.0},
                 Usage(input_tokens=6, output_tokens=5, cached_input_tokens=4, reasoning_tokens=2), id="openai"),
    pytest.param("anthropic", {"input_tokens": 10.0, "output_tokens": 5.0, "cache_read_input_tokens": 3.0,
                               "cache_creation_input_tokens": 1.0},
                 Usage(input_tokens=10, output_tokens=5, cached_input_tokens=3, cache_write_tokens=1), id="anthropic"),
    pytest.param("openai", {"input_tokens": 10.0}, None, id="other-api-keys-only"),
    pytest.param("openai", {"prompt_tokens": 1.5, "completion_tokens": -3.0}, Usage(), id="not-counts"),
    pytest.param("openai", {"prompt_tokens": 10.0, "completion_tokens": 1e45}, None, id="past-any-plausible-count"),
    pytest.param("anthropic", {"input_tokens": float("inf"), "output_tokens": 5.0}, Usage(output_tokens=5),
                 id="infinite-is-no-count"),
    pytest.param("anthropic", {"input_tokens": 3.0, "output_tokens": 5.0, "prompt_tokens": 1e45}, Usage(3, 5),
                 id="another-apis-figure-is-not-read"),
])
def test_usage_extracted_by_envoy_is_read_like_the_answer_itself(api, extracted, usage):
    assert usage_of(api, extracted) == usage
