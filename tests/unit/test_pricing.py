"""The shipped price table, name resolution and config overrides."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest

from edge_ext.cost.pricing import (
    SHIPPED_PRICING,
    Price,
    PriceOverride,
    PricingError,
    PricingOverrides,
    load_pricing,
)

D = Decimal


@pytest.fixture(scope="module")
def table():
    return load_pricing()


# model: (input, cached_input, cache_write, output) per million tokens.
SHIPPED = {
    "gpt-4o": ("2.50", "1.25", "2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.075", "0.15", "0.60"),
    "gpt-4.1": ("2.00", "0.50", "2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.10", "0.40"),
    "o3": ("2.00", "0.50", "2.00", "8.00"),
    "o4-mini": ("1.10", "0.275", "1.10", "4.40"),
    "gpt-5": ("1.25", "0.125", "1.25", "10.00"),
    "gpt-5-mini": ("0.25", "0.025", "0.25", "2.00"),
    "claude-opus-4-1": ("15.00", "1.50", "18.75", "75.00"),
    "claude-sonnet-4-5": ("3.00", "0.30", "3.75", "15.00"),
    "claude-sonnet-4-6": ("3.00", "0.30", "3.75", "15.00"),
    "claude-haiku-4-5": ("1.00", "0.10", "1.25", "5.00"),
    "claude-3-5-haiku": ("0.80", "0.08", "1.00", "4.00"),
}


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_shipped_prices(table, model):
    price = table.price(model)
    assert price is not None
    assert (price.input, price.cached_input, price.cache_write, price.output) == tuple(D(v) for v in SHIPPED[model])


def test_shipped_table_is_sane(table):
    assert SHIPPED_PRICING.is_file()
    for name, price in table.models.items():
        # A cache read is never dearer than a fresh read, nor a cache write cheaper.
        assert price.cached_input <= price.input, name
        assert price.cache_write >= price.input, name
        if price.output == 0:  # embedding models (the semantic cache's lookups) generate nothing
            assert name.startswith("text-embedding-"), name
            continue
        assert price.output >= price.input, name
        assert price.max_output_tokens and price.context_window, name


def test_openai_cache_write_defaults_to_input(table):
    # OpenAI entries omit cache_write: writes are billed as ordinary input.
    price = table.price("gpt-4o")
    assert price.cache_write == price.input == D("2.50")


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        pytest.param("gpt-4o-mini-2024-07-18", "gpt-4o-mini", id="openai-dated-snapshot"),
        pytest.param("gpt-4.1-2025-04-14", "gpt-4.1", id="openai-dated-snapshot-4.1"),
        pytest.param("o3-2025-04-16", "o3", id="o3-snapshot"),
        pytest.param("claude-haiku-4-5-20251001", "claude-haiku-4-5", id="anthropic-dated-snapshot"),
        pytest.param("claude-3-5-haiku-latest", "claude-3-5-haiku", id="anthropic-latest"),
        pytest.param("gpt-5-chat-latest", "gpt-5", id="explicit-alias"),
        pytest.param("claude-sonnet-4-0", "claude-sonnet-4", id="explicit-alias-anthropic"),
        pytest.param("  GPT-4o  ", "gpt-4o", id="case-and-space-insensitive"),
        pytest.param("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", id="exact-snapshot-beats-suffix-rule"),
        pytest.param("o3-mini", "o3-mini", id="longer-name-is-its-own-model"),
        pytest.param("o3-pro", None, id="no-prefix-rule-o3-pro"),
        pytest.param("gpt-4o-audio-preview", None, id="no-prefix-rule-audio"),
        pytest.param("gpt-4o-mini-2024-07-18-x", None, id="suffix-must-be-last"),
        pytest.param("llama-3-70b", None, id="unknown"),
    ],
)
def test_resolution(table, asked, resolved):
    assert table.resolve(asked) == resolved
    assert (table.price(asked) is None) == (resolved is None)


def test_dated_snapshot_with_own_price(table):
    assert table.price("gpt-4o-2024-05-13").input == D("5.00")
    assert table.price("gpt-4o-2024-08-06").input == D("2.50")


def test_override_replaces_only_the_fields_it_sets():
    table = load_pricing(overrides={"models": {"gpt-4o": {"input": "2.00"}}})
    price = table.price("gpt-4o")
    assert price.input == D("2.00")
    assert price.cached_input == D("1.25")  # kept from the shipped entry
    assert price.output == D("10.00")
    assert load_pricing().price("gpt-4o").input == D("2.50")  # the shipped table is untouched


def test_override_null_restores_default():
    table = load_pricing(overrides={"models": {"gpt-4o": {"cached_input": None}}})
    assert table.price("gpt-4o").cached_input == D("2.50")


def test_override_adds_model_and_alias():
    table = load_pricing(
        overrides={
            "models": {"Llama-3.3-70B": {"input": 0.59, "output": 0.79, "context_window": 128000}},
            "aliases": {"llama-prod": "llama-3.3-70b"},
        }
    )
    price = table.price("llama-prod")
    # Floats are read through their decimal repr: 0.59 is exactly 0.59.
    assert price.input == D("0.59") and price.output == D("0.79")
    assert price.cached_input == price.cache_write == D("0.59")
    assert table.resolve("LLAMA-3.3-70b") == "llama-3.3-70b"


def test_override_model_beats_shipped_alias():
    table = load_pricing(overrides={"models": {"gpt-5-chat-latest": {"input": 1, "output": 2}}})
    assert table.resolve("gpt-5-chat-latest") == "gpt-5-chat-latest"
    assert table.price("gpt-5-chat-latest").output == D("2")


def test_overrides_as_model():
    overrides = PricingOverrides(models={"o3": PriceOverride(output=D("9"))})
    assert load_pricing(overrides=overrides).price("o3").output == D("9")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"models": {"gpt-4o": {"input": -1}}}, "models.gpt-4o.input: Input should be greater than or equal to 0", id="negative"),
        pytest.param({"models": {"gpt-4o": {"inptu": 1}}}, "models.gpt-4o.inptu: unknown field", id="typo-field"),
        pytest.param({"models": {"my-model": {"input": 1}}}, "models.my-model.output: Field required", id="new-model-incomplete"),
        pytest.param({"models": {"gpt-4o": {"output": True}}}, "models.gpt-4o.output", id="boolean"),
        pytest.param({"models": {"gpt-4o": {"output": "abc"}}}, "models.gpt-4o.output", id="not-a-number"),
        pytest.param({"models": {"gpt-4o": {"output": float("nan")}}}, "models.gpt-4o.output", id="nan"),
        pytest.param({"models": {"gpt-4o": {"max_output_tokens": 0}}}, "models.gpt-4o.max_output_tokens", id="zero-limit"),
        pytest.param({"models": {"gpt-4o": {"max_output_tokens": 10**6}}}, "max_output_tokens exceeds context_window", id="limit-over-window"),
        pytest.param({"aliases": {"x": "nope"}}, "alias 'x' points to 'nope'", id="dangling-alias"),
        pytest.param({"aliases": {"gpt-4o": "o3"}}, "alias 'gpt-4o' shadows", id="alias-shadows-model"),
        pytest.param({"modles": {}}, "modles: unknown field", id="typo-top-level"),
    ],
)
def test_bad_override_names_model_and_field(overrides, expected):
    with pytest.raises(PricingError) as info:
        load_pricing(overrides=overrides)
    assert expected in str(info.value)
    assert str(info.value).startswith("pricing overrides: ")


def test_bad_file_names_path_model_and_field(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  m1: {input: 1, output: 2}\n  m2: {input: 1, cached_input: -0.5, output: 2}\n")
    with pytest.raises(PricingError, match=r"pricing\.yaml: models\.m2\.cached_input"):
        load_pricing(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("- a\n- b\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("models: {a: [\n", "not valid YAML", id="bad-yaml"),
        pytest.param("models:\n  A: {input: 1, output: 1}\n  a: {input: 2, output: 2}\n", "listed twice", id="case-duplicate"),
    ],
)
def test_bad_file(tmp_path, content, expected):
    path = tmp_path / "p.yaml"
    path.write_text(content)
    with pytest.raises(PricingError, match=expected):
        load_pricing(path)


def test_missing_file(tmp_path):
    with pytest.raises(PricingError, match="No such file"):
        load_pricing(tmp_path / "absent.yaml")


def test_price_is_frozen_and_strict():
    price = Price(input="1", output="2")
    with pytest.raises(pydantic.ValidationError):
        price.input = D("3")  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Price(input="1", output="2", currency="EUR")
