"""The estimates behind budgets: what a request reserves before it is routed, what an answer
cut short is charged, and how a budget verdict counts what requests in flight hold."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge_ext.cost.budget import BudgetSpec, check
from edge_ext.cost.calc import estimate_input_tokens
from edge_ext.cost.estimate import DeliveredText, estimated_usage
from edge_ext.cost.pricing import load_pricing
from edge_ext.cost.reserve import DEFAULT_OUTPUT_TOKENS, reservation
from edge_ext.usage import Usage

D = Decimal
PRICES = load_pricing()
MINI, SONNET = PRICES.price("gpt-4o-mini"), PRICES.price("claude-sonnet-4-6")
HELLO = [{"role": "user", "content": "hello"}]


# --- the reservation ---------------------------------------------------------------------------
@pytest.mark.parametrize("body, prices, output", [
    pytest.param({"max_tokens": 50}, (MINI,), 50, id="the-request-cap"),
    pytest.param({"max_completion_tokens": 70, "max_tokens": 50}, (MINI,), 70, id="max-completion-tokens-first"),
    pytest.param({}, (MINI,), MINI.max_output_tokens, id="no-cap-the-model-limit"),
    pytest.param({"max_tokens": 10**9}, (MINI,), MINI.max_output_tokens, id="cap-above-the-model-limit"),
    pytest.param({}, (), DEFAULT_OUTPUT_TOKENS, id="unknown-limit-the-default"),
    pytest.param({"max_tokens": 50}, (), 50, id="unpriced-cap"),
])
def test_reserved_output_tokens(body, prices, output):
    assert reservation({"model": "m", "messages": HELLO, **body}, prices).output_tokens == output


def test_reservation_is_priced_at_the_dearest_model_and_input_price():
    body = {"model": "group", "messages": [{"role": "user", "content": "x" * 4000}], "max_tokens": 100}
    cheap, dear = reservation(body, (MINI,)), reservation(body, (MINI, SONNET))
    assert cheap.input_tokens == estimate_input_tokens(body) and cheap.tokens == cheap.input_tokens + 100
    assert dear.usd > cheap.usd
    # Anthropic cache writes cost more than input: the reservation assumes them.
    assert dear.usd == (dear.input_tokens * SONNET.cache_write + 100 * SONNET.output) / 1_000_000
    assert reservation(body, ()).usd == 0


@pytest.mark.parametrize("spent, held, allowed, message", [
    ("3", "1", True, "daily budget of tenant 'acme': $3.00 of $5.00 spent and $1.00 held by requests in progress, $1.00 left"),
    ("3", "2", False, "daily budget of tenant 'acme' is fully reserved: $3.00 of $5.00 spent and $2.00 held by requests "
                      "in progress; retry when they end"),
    ("5", "1", False, "daily budget of tenant 'acme' exhausted: $5.00 of $5.00 spent and $1.00 held by requests in progress"),
], ids=["room-left", "held-up", "spent"])
def test_check_counts_what_requests_in_flight_hold(spent, held, allowed, message):
    verdict = check(BudgetSpec("tenant", "acme", "daily", D("5")), D(spent), held=D(held))
    assert (verdict.allowed, verdict.message) == (allowed, message)


# --- the estimate of an answer cut short ---------------------------------------------------------
@pytest.mark.parametrize("api, events, chars", [
    pytest.param("openai", [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                            {"choices": [{"index": 0, "delta": {"content": "lorem ipsum"}}]},
                            {"choices": [{"index": 0, "delta": {"tool_calls": [
                                {"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": "find", "arguments": "{\"q\":"}}]}}]},
                            {"choices": [], "usage": None}], 11 + 4 + 5, id="openai-text-and-tool-call"),
    pytest.param("anthropic", [{"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
                               {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                               {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "dolor sit"}},
                               {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "hm"}},
                               {"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta", "signature": "x" * 99}},
                               {"type": "content_block_start", "index": 2,
                                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "find", "input": {}}},
                               {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"q\": 1"}}],
                 9 + 2 + 4 + 7, id="anthropic-text-thinking-tool-use"),
])
def test_delivered_text_counts_generated_characters(api, events, chars):
    text = DeliveredText(api)
    for event in events:
        text.observe_event(event)
    assert text.chars == chars


@pytest.mark.parametrize("api, body, chars", [
    pytest.param("openai", {"choices": [{"message": {"role": "assistant", "content": "abcd", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}, 7, id="openai"),
    pytest.param("anthropic", {"content": [{"type": "text", "text": "abcd"},
                                           {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "xy"}}]}, 7,
                 id="anthropic"),
])
def test_delivered_text_of_a_whole_answer(api, body, chars):
    text = DeliveredText(api)
    text.observe_body(body)
    assert text.chars == chars


@pytest.mark.parametrize("reported, chars, expected", [
    pytest.param(None, 401, Usage(input_tokens=None, output_tokens=101), id="nothing-reported-input-from-the-request"),
    pytest.param(Usage(input_tokens=50, cached_input_tokens=20, output_tokens=1), 40,
                 Usage(input_tokens=50, cached_input_tokens=20, output_tokens=10), id="anthropic-message-start-kept"),
    pytest.param(Usage(input_tokens=50, output_tokens=300), 40, Usage(input_tokens=50, output_tokens=300),
                 id="a-larger-running-count-kept"),
])
def test_estimated_usage(reported, chars, expected):
    body = {"model": "m", "messages": HELLO}
    if expected.input_tokens is None:
        expected = Usage(input_tokens=estimate_input_tokens(body), output_tokens=expected.output_tokens)
    assert estimated_usage(reported, body, chars) == expected
