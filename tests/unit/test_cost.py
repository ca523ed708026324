"""Exact costs, unpriced models, and the prompt-size estimate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ext.cost.calc import (
    ATTACHMENT_TOKENS,
    QUANTUM,
    CostResult,
    cost,
    cost_of,
    _plain_chars,
    _text_units,
    estimate_input_tokens,
    requested_output_tokens,
)
from edge_ext.cost.pricing import Price, load_pricing
from edge_ext.usage import Usage, from_anthropic, from_openai

D = Decimal
TABLE = load_pricing()


@pytest.mark.parametrize(
    ("model", "usage", "usd"),
    [
        pytest.param("gpt-4o-mini", Usage(input_tokens=1_000_000), "0.15", id="1M-uncached-input"),
        pytest.param("gpt-4o-mini", Usage(output_tokens=1_000_000), "0.60", id="1M-output"),
        pytest.param("gpt-4o-mini", Usage(cached_input_tokens=1_000_000), "0.075", id="1M-cached-input"),
        # 1000*2.50 + 2000*1.25 + 500*10 = 10000 per million
        pytest.param("gpt-4o", Usage(input_tokens=1000, cached_input_tokens=2000, output_tokens=500), "0.01", id="mixed-cached"),
        # 1200*1.10 + 800*0.275 + 3000*4.40 = 14740; the 2500 reasoning tokens are inside output
        pytest.param(
            "o4-mini",
            Usage(input_tokens=1200, cached_input_tokens=800, output_tokens=3000, reasoning_tokens=2500),
            "0.01474",
            id="reasoning-not-double-counted",
        ),
        # OpenAI reports no cache-write premium: writes cost input (1000*1.25)
        pytest.param("gpt-5", Usage(cache_write_tokens=1000), "0.00125", id="openai-cache-write-at-input"),
        # 500*3 + 10000*0.30 + 2000*3.75 + 700*15 = 22500
        pytest.param(
            "claude-sonnet-4-5",
            Usage(input_tokens=500, cached_input_tokens=10000, cache_write_tokens=2000, output_tokens=700),
            "0.0225",
            id="anthropic-cache-read-and-write",
        ),
        # 15 + 18.75 + 75 = 108.75 per million
        pytest.param(
            "claude-opus-4-1",
            Usage(input_tokens=1, cache_write_tokens=1, output_tokens=1),
            "0.00010875",
            id="anthropic-single-tokens",
        ),
        pytest.param("gpt-4.1-nano", Usage(input_tokens=1), "0.0000001", id="one-token"),
        pytest.param("gpt-4o-mini-2024-07-18", Usage(input_tokens=2_000_000), "0.30", id="dated-snapshot"),
        pytest.param("gpt-4o", Usage(), "0", id="nothing"),
    ],
)
def test_exact_cost(model, usage, usd):
    result = cost_of(usage, model, TABLE)
    assert result == CostResult(D(usd), True)
    assert result.usd.as_tuple().exponent == -9  # always quantized to a nano-dollar


def test_cost_from_openai_usage_body():
    usage = from_openai(
        {
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 1000},
                "completion_tokens_details": {"reasoning_tokens": 100},
            }
        }
    )
    # 200*0.15 + 1000*0.075 + 300*0.60 = 285
    assert cost(usage, TABLE.price("gpt-4o-mini")) == D("0.000285")


def test_cost_from_anthropic_usage_body():
    usage = from_anthropic(
        {
            "usage": {
                "input_tokens": 20,
                "cache_read_input_tokens": 4000,
                "cache_creation_input_tokens": 1000,
                "output_tokens": 250,
            }
        }
    )
    # 20*1.00 + 4000*0.10 + 1000*1.25 + 250*5 = 2920
    assert cost(usage, TABLE.price("claude-haiku-4-5")) == D("0.00292")


@pytest.mark.parametrize(
    ("per_million", "tokens", "usd"),
    [
        pytest.param("0.0015", 1, "0.000000002", id="half-rounds-to-even-up"),
        pytest.param("0.0025", 1, "0.000000002", id="half-rounds-to-even-down"),
        pytest.param("0.0004", 1, "0", id="below-a-nano-dollar"),
        pytest.param("0.0004", 3, "0.000000001", id="summed-before-rounding"),
    ],
)
def test_rounding_is_half_even_once(per_million, tokens, usd):
    price = Price(input=per_million, output=per_million)
    assert cost(Usage(input_tokens=tokens), price) == D(usd)


def test_unpriced_model_is_never_zero():
    result = cost_of(Usage(input_tokens=10, output_tokens=10), "my-local-llama", TABLE)
    assert result == CostResult(None, False)
    assert not result.priced and result.usd is None


@pytest.mark.parametrize(("usd", "priced"), [(None, True), (D("0"), False)])
def test_cost_result_is_consistent(usd, priced):
    with pytest.raises(ValueError):
        CostResult(usd, priced)


def test_negative_tokens_are_refused():
    with pytest.raises(ValueError, match="token counts"):
        cost(Usage(input_tokens=-1), TABLE.price("gpt-4o"))


def test_huge_counts_stay_exact():
    usage = Usage(input_tokens=10**15, output_tokens=10**15 + 1)
    # 1e15 * 0.15 / 1e6 + (1e15 + 1) * 0.60 / 1e6
    assert cost(usage, TABLE.price("gpt-4o-mini")) == D("750000000.0000006")


counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(Usage, counts, counts, counts, counts, st.just(0))


@settings(max_examples=150, deadline=None)
@given(a=usages, b=usages, model=st.sampled_from(sorted(TABLE.models)))
def test_cost_is_additive_for_shipped_prices(a, b, model):
    # Shipped prices have at most 3 decimals, so every cost is exact at 1e-9: splitting an
    # exchange's usage never changes the total, and cost grows with usage.
    price = TABLE.price(model)
    assert cost(a + b, price) == cost(a, price) + cost(b, price)
    assert cost(a + b, price) >= cost(a, price) >= 0


# --- estimate_input_tokens -------------------------------------------------------------------------

BASE64_IMAGE = "data:image/png;base64," + "A" * 100_000


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        # ceil(12/4) + 4 per message + 3 priming
        pytest.param({"messages": [{"role": "user", "content": "hello world!"}]}, 10, id="one-message"),
        pytest.param({"messages": [{"role": "user", "content": "abcde"}]}, 2 + 7, id="rounds-up"),
        pytest.param(
            {"messages": [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 40}]},
            20 + 8 + 3,
            id="two-messages",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [
                {"type": "text", "text": "x" * 400},
                {"type": "image_url", "image_url": {"url": BASE64_IMAGE, "detail": "high"}},
            ]}]},
            100 + ATTACHMENT_TOKENS + 7,
            id="openai-image-is-flat-not-base64-length",
        ),
        pytest.param(
            {
                "system": "s" * 80,
                "messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 50_000}},
                    {"type": "text", "text": "t" * 40, "cache_control": {"type": "ephemeral"}},
                ]}],
            },
            20 + ATTACHMENT_TOKENS + 10 + 7,
            id="anthropic-system-image-text",
        ),
        pytest.param(
            {"messages": [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_w", "arguments": '{"c":"P"}'}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ]},
            -(-(5 + 9 + 5) // 4) + 8 + 3,
            id="tool-calls-count-name-and-arguments",
        ),
        pytest.param({"prompt": [101, 2023, 2003]}, 3, id="token-id-prompt"),
        pytest.param({"input": "z" * 400, "instructions": "i" * 40}, 110, id="responses-api"),
        pytest.param({}, 0, id="empty"),
        pytest.param({"messages": []}, 0, id="no-messages"),
        pytest.param({"messages": [{"role": "user", "content": "abcd", "extra": {"type": [], "note": "efgh"}}]},
                     2 + 4 + 3, id="an-unhashable-type-is-no-attachment"),
        pytest.param({"input": 7}, 0, id="a-number-where-text-was-expected"),
    ],
)
def test_estimate_input_tokens(body, tokens):
    assert estimate_input_tokens(body) == tokens


def test_estimate_counts_tool_schemas():
    tools = [{"type": "function", "function": {"name": "f", "description": "d" * 100, "parameters": {"type": "object"}}}]
    without = estimate_input_tokens({"messages": [{"role": "user", "content": "hi"}]})
    with_tools = estimate_input_tokens({"messages": [{"role": "user", "content": "hi"}], "tools": tools})
    assert with_tools - without >= 25  # the 100-character description alone is 25 tokens


@pytest.mark.parametrize("body", [None, "text", [1, 2], {"messages": "not a list"}, {"messages": [1, None, True]}])
def test_estimate_tolerates_odd_bodies(body):
    assert estimate_input_tokens(body) >= 0


# Messages near the plain shape (a role and a string content) and off it in every way the walk
# tells apart: other keys, a type, non-string contents and roles, inline data, non-dict items.
_TEXT = st.one_of(st.text(max_size=12), st.just("data:" + "A" * 300), st.just("x" * 300))
_VALUE = st.one_of(_TEXT, st.none(), st.integers(), st.booleans(), st.lists(_TEXT, max_size=2),
                   st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": _TEXT}))
_MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": _VALUE, "content": _TEXT}),
    st.dictionaries(st.sampled_from(["role", "content", "name", "type", "tool_call_id", "id"]), _VALUE, max_size=4),
    _VALUE,
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_MESSAGE, max_size=4))
def test_plain_messages_count_as_the_walk_counts_them(messages):
    chars = _plain_chars(messages)
    if chars is not None:
        assert _text_units(messages) == (chars, 0, 0)


@pytest.mark.parametrize("messages, chars", [
    pytest.param([{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}], 10, id="chat"),
    pytest.param([{"role": None, "content": ""}], 0, id="any-role-empty-content"),
    pytest.param([{"content": "x" * 300, "role": "user"}], 300, id="long-text-is-text"),
    pytest.param([], 0, id="none"),
    pytest.param([{"role": "user", "content": "data:" + "A" * 300}], None, id="inline-data-is-walked"),
    pytest.param([{"role": "user", "content": "hi", "name": "bob"}], None, id="a-third-key-is-walked"),
    pytest.param([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], None, id="parts-are-walked"),
    pytest.param([{"type": "message", "content": "hi"}], None, id="no-role-is-walked"),
    pytest.param(["hi"], None, id="not-a-dict-is-walked"),
])
def test_plain_messages_shape(messages, chars):
    assert _plain_chars(messages) == chars


def test_estimate_deep_nesting_does_not_recurse():
    nested: list = ["x" * 8]
    for _ in range(50_000):
        nested = [nested]
    assert estimate_input_tokens({"input": nested}) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 512}, 512),
        ({"max_completion_tokens": 100, "max_tokens": 512}, 100),
        ({"max_output_tokens": 64}, 64),
        ({"max_tokens": 0}, None),
        ({"max_tokens": True}, None),
        ({"max_tokens": "100"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_requested_output_tokens(body, expected):
    assert requested_output_tokens(body) == expected


def test_quantum():
    assert QUANTUM == D("1e-9")


_ANSWER = b'{"id":"c","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500}}'


@pytest.mark.parametrize(
    ("case", "api", "model", "body", "expected"),
    [
        ("priced answer", "openai", "gpt-4o-mini", _ANSWER, [Decimal("0.00045")] * 3),
        ("unpriced model", "openai", "no-such-model", _ANSWER, []),
        ("answer without usage", "openai", "gpt-4o-mini", b'{"id":"c","choices":[]}', []),
        ("not json", "openai", "gpt-4o-mini", b"{", []),
    ],
)
def test_a_hit_reports_what_it_saved_every_time_it_is_served(case, api, model, body, expected):
    from edge_ext.policy.accounting import Accounting

    seen = []
    accounting = Accounting(load_pricing(), on_saved=lambda m, usd: seen.append(usd))
    for _ in range(3):  # the second and third from what the first worked out
        accounting.saved(api, model, body)
    assert seen == expected, case


def test_saved_costs_kept_are_bounded_by_the_bytes_of_their_answers(monkeypatch):
    from edge_ext.policy import accounting as module

    monkeypatch.setattr(module, "_SAVED_KEPT_BYTES", 2 * len(_ANSWER))
    seen = []
    accounting = module.Accounting(load_pricing(), on_saved=lambda m, usd: seen.append(usd))
    for n in range(5):
        accounting.saved("openai", "gpt-4o-mini", _ANSWER.replace(b'"c"', f'"{n}"'.encode()))
        assert accounting._saved_bytes <= 2 * len(_ANSWER)
    assert len(seen) == 5 and len(set(seen)) == 1


@pytest.mark.parametrize("tokens", [10**6, 10**30, 10**56, 10**57, 10**60], ids=lambda n: f"1e{len(str(n)) - 1}")
def test_whole_number_pricing_agrees_with_decimal_pricing_or_refuses_alike(tokens):
    from decimal import InvalidOperation

    from edge_ext.cost.calc import Rates, cost_at

    price = load_pricing().price("gpt-4o-mini")
    usage = Usage(tokens, tokens, 0, 0)
    try:
        expected = cost(usage, price)
    except InvalidOperation:
        with pytest.raises(InvalidOperation):
            cost_at(usage, Rates(price))
    else:
        assert cost_at(usage, Rates(price)) == expected


def test_saved_costs_kept_are_bounded_by_their_number(monkeypatch):
    from edge_ext.policy import accounting as module

    monkeypatch.setattr(module, "_SAVED_KEPT", 3)
    accounting = module.Accounting(load_pricing())
    for n in range(10):
        accounting.saved("openai", "gpt-4o-mini", _ANSWER.replace(b'"c"', f'"{n}"'.encode()))
        assert len(accounting._saved_of) <= 3
