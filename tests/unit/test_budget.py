"""Budget periods and verdicts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge_ext.cost.budget import BudgetSpec, check, format_usd, period_key, resets_at
from edge_ext.cost.ledger_api import BudgetLedger, Hold
from tests.fakes import MemoryLedger

D = Decimal

NOV_27_START = 1795737600  # 2026-11-27T00:00:00Z
NOV_27_END = 1795823999  # 2026-11-27T23:59:59Z
NOV_28_START = 1795824000
DEC_31_END = 1798761599  # 2026-12-31T23:59:59Z
JAN_1_START = 1798761600  # 2027-01-01T00:00:00Z
LEAP_DAY_NOON = 1835438400  # 2028-02-29T12:00:00Z


@pytest.mark.parametrize(
    ("period", "now", "key"),
    [
        pytest.param("daily", NOV_27_START, "2026-11-27", id="day-start"),
        pytest.param("daily", NOV_27_END + 0.999, "2026-11-27", id="day-last-instant"),
        pytest.param("daily", NOV_28_START, "2026-11-28", id="day-rollover"),
        pytest.param("monthly", NOV_27_START, "2026-11", id="month"),
        pytest.param("monthly", DEC_31_END, "2026-12", id="month-last-second"),
        pytest.param("monthly", JAN_1_START, "2027-01", id="year-rollover"),
        pytest.param("daily", LEAP_DAY_NOON, "2028-02-29", id="leap-day"),
        pytest.param("daily", 0, "1970-01-01", id="epoch"),
        pytest.param("total", NOV_27_START, "total", id="total"),
        pytest.param("total", JAN_1_START, "total", id="total-never-rolls"),
    ],
)
def test_period_key(period, now, key):
    assert period_key(period, now) == key


@pytest.mark.parametrize(
    ("period", "now", "reset"),
    [
        ("daily", NOV_27_START + 3600, NOV_28_START),
        ("daily", NOV_27_END, NOV_28_START),
        ("monthly", NOV_27_START, 1796083200),  # 2026-12-01T00:00:00Z
        ("monthly", DEC_31_END, JAN_1_START),
        ("monthly", LEAP_DAY_NOON, 1835481600),  # 2028-03-01T00:00:00Z
        ("total", NOV_27_START, None),
    ],
)
def test_resets_at(period, now, reset):
    assert resets_at(period, now) == reset


def test_unknown_period():
    with pytest.raises(ValueError, match="period"):
        period_key("weekly", 0)  # type: ignore[arg-type]


async def test_daily_budget_rolls_over_with_the_period_key():
    spec = BudgetSpec("tenant", "acme", "daily", D("1.00"))
    ledger = MemoryLedger()
    assert isinstance(ledger, BudgetLedger)
    now = NOV_27_START + 100
    day1 = period_key(spec.period, now)
    for i, usd in enumerate(("0.60", "0.45")):
        await ledger.settle(Hold(spec.scope_id, day1, f"h{i}", D(usd), now + 60), D(usd), estimated=False)

    async def spent(scope_id: str, period: str) -> Decimal:
        return (await ledger.totals(scope_id, period, now)).spent

    assert await spent(spec.scope_id, day1) == D("1.05")
    assert not check(spec, await spent(spec.scope_id, day1)).allowed
    day2 = period_key(spec.period, NOV_28_START)
    assert await spent(spec.scope_id, day2) == D("0")
    assert check(spec, await spent(spec.scope_id, day2)).allowed
    # Other subjects keep their own counters.
    assert await spent("tenant:other", day1) == D("0")


@pytest.mark.parametrize(
    ("spec", "spent", "allowed", "remaining", "message"),
    [
        pytest.param(
            BudgetSpec("tenant", "acme", "daily", D("10")), D("3.2"), True, D("6.8"),
            "daily budget of tenant 'acme': $3.20 of $10.00 spent, $6.80 left", id="under",
        ),
        pytest.param(
            BudgetSpec("tenant", "acme", "daily", D("10")), D("10"), False, D("0"),
            "daily budget of tenant 'acme' exhausted: $10.00 of $10.00 spent", id="exactly-at-limit",
        ),
        pytest.param(
            BudgetSpec("key", "k_3f9a", "monthly", D("25")), D("25.0412"), False, D("0"),
            "monthly budget of key 'k_3f9a' exhausted: $25.04 of $25.00 spent", id="over",
        ),
        pytest.param(
            BudgetSpec("key", "k1", "total", D("0")), D("0"), False, D("0"),
            "total budget of key 'k1' exhausted: $0.00 of $0.00 spent; it does not reset", id="zero-limit",
        ),
        pytest.param(
            BudgetSpec("key", "k1", "total", D("0.01")), D("0.000123"), True, D("0.009877"),
            "total budget of key 'k1': $0.000123 of $0.01 spent, $0.009877 left", id="sub-cent",
        ),
    ],
)
def test_check(spec, spent, allowed, remaining, message):
    verdict = check(spec, spent)
    assert (verdict.allowed, verdict.remaining) == (allowed, remaining)
    assert verdict.message.startswith(message)


def test_check_message_says_when_it_resets():
    spec = BudgetSpec("tenant", "acme", "daily", D("5"))
    verdict = check(spec, D("7"), now_epoch=NOV_27_START + 5000)
    assert verdict.message == (
        "daily budget of tenant 'acme' exhausted: $7.00 of $5.00 spent; it resets at 2026-11-28T00:00:00Z"
    )
    monthly = BudgetSpec("key", "k9", "monthly", D("5"))
    assert check(monthly, D("5"), now_epoch=DEC_31_END).message.endswith("resets at 2027-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scope": "team"}, "scope"),
        ({"period": "weekly"}, "period"),
        ({"id": ""}, "id"),
        ({"limit_usd": D("-1")}, "limit_usd"),
        ({"limit_usd": D("NaN")}, "limit_usd"),
        ({"limit_usd": True}, "limit_usd"),
        ({"tokens_per_minute": 0}, "tokens_per_minute"),
        ({"tokens_per_minute": 1.5}, "tokens_per_minute"),
    ],
)
def test_budget_spec_validation(kwargs, match):
    args = {"scope": "key", "id": "k1", "period": "daily", "limit_usd": D("1"), **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        BudgetSpec(**args)


def test_budget_spec_normalizes_limit():
    assert BudgetSpec("key", "k1", "daily", 10.1).limit_usd == D("10.1")  # type: ignore[arg-type]
    assert BudgetSpec("key", "k1", "daily", "2.50").limit_usd == D("2.50")  # type: ignore[arg-type]
    spec = BudgetSpec("tenant", "acme", "total", D("1"), tokens_per_minute=1000)
    assert spec.scope_id == "tenant:acme"
    with pytest.raises(AttributeError):
        spec.limit_usd = D("2")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("amount", "text"),
    [(D("10"), "$10.00"), (D("1234.5"), "$1,234.50"), (D("0.000123"), "$0.000123"), (D("0.0000001"), "$0.00"),
     (D("3.14159"), "$3.14"), (D("0"), "$0.00")],
)
def test_format_usd(amount, text):
    assert format_usd(amount) == text
