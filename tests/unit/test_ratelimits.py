"""Providers' own rate-limit headers: parsing, the one routing rule, the shared record, the mock."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.errors import ProviderUnavailable
from edge_ext.mock.ratelimits import RateLimitSpec, RateLimitWindow, go_duration, rfc3339
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.ratelimits import (
    Budget, LimitRule, ProviderLimits, Standing, arrange, parse, parse_duration, parse_instant,
)
from edge_ext.routing.router import Router
from edge_ext.routing.shared_limits import MemoryLimits, SharedLimits, decode, encode
from edge_ext.routing.shared_state import MemoryBreakerStore

NOW = 1_800_000_000.0


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [
    ("6m0s", 360.0), ("1s", 1.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("2.5", 2.5),
    ("59.123s", 59.123), (" 7s ", 7.0),
])
def test_durations_as_openai_spells_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "6m0", "s", "1x", "-1s", "1s2", "ms", "nan", "inf", "1s 2s"])
def test_durations_that_do_not_parse_are_none(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("text,epoch", [
    ("2027-01-15T08:00:00Z", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()),
    ("2027-01-15T08:00:00.250Z", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp() + 0.25),
    ("2027-01-15T09:00:00+01:00", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()),
])
def test_rfc3339_instants(text, epoch):
    assert parse_instant(text) == pytest.approx(epoch)


@pytest.mark.parametrize("text", [None, "", "tomorrow", "2027-01-15T08:00:00", "2027-13-01T00:00:00Z", "1700000000"])
def test_instants_without_an_offset_or_malformed_are_none(text):
    assert parse_instant(text) is None


def openai_headers(req=("100", "1000", "6m0s"), tok=("9000", "10000", "20ms")) -> dict[str, str]:
    out = {}
    for kind, values in (("requests", req), ("tokens", tok)):
        if values is None:
            continue
        for part, value in zip(("remaining", "limit", "reset"), values):
            if value is not None:
                out[f"x-ratelimit-{part}-{kind}"] = value
    return out


def anthropic_headers(**kinds: tuple) -> dict[str, str]:
    out = {}
    for kind, values in kinds.items():
        for part, value in zip(("remaining", "limit", "reset"), values):
            out[f"anthropic-ratelimit-{kind.replace('_', '-')}-{part}"] = value
    return out


@pytest.mark.parametrize("headers,requests,tokens", [
    (openai_headers(), Budget(100, 1000, NOW + 360), Budget(9000, 10000, NOW + 0.02)),
    (openai_headers(tok=None), Budget(100, 1000, NOW + 360), None),
    (openai_headers(req=("0", None, "1s"), tok=None), Budget(0, None, NOW + 1), None),
    # A budget missing its remaining count or its reset, or with one that does not parse, says nothing.
    (openai_headers(req=(None, "1000", "1s"), tok=("5", "10", "later")), None, None),
    (openai_headers(req=("many", "1000", "1s"), tok=("-3", "10", "1s")), None, None),
    (openai_headers(req=("5", "lots", "1s"), tok=None), Budget(5, None, NOW + 1), None),
    (anthropic_headers(requests=("40", "50", iso(NOW + 30))), Budget(40, 50, NOW + 30), None),
    # Anthropic's token budget is the one nearest its end: input, output or combined.
    (anthropic_headers(tokens=("900", "1000", iso(NOW + 60)), input_tokens=("100", "1000", iso(NOW + 60)),
                       output_tokens=("500", "1000", iso(NOW + 60))),
     None, Budget(100, 1000, NOW + 60)),
    (anthropic_headers(input_tokens=("100", "1000", "2027-01-15T08:00:00")), None, None),
    ({"content-type": "application/json"}, None, None),
])
def test_headers_become_budgets(headers, requests, tokens):
    limits = parse(headers, NOW)
    if requests is None and tokens is None:
        assert limits is None
    else:
        assert (limits.requests, limits.tokens, limits.observed_at) == (requests, tokens, NOW)


# -- the rule ---------------------------------------------------------------------------------
def limits(req=None, tok=None, observed=NOW) -> ProviderLimits:
    return ProviderLimits(req, tok, observed)


RULE = LimitRule(low_fraction=0.1, max_hold_s=300)


@pytest.mark.parametrize("name,reported,now,standing,until", [
    ("nothing reported", None, NOW, Standing.UNKNOWN, 0.0),
    ("plenty left", limits(Budget(500, 1000, NOW + 60)), NOW, Standing.OK, 0.0),
    ("requests low", limits(Budget(50, 1000, NOW + 60)), NOW, Standing.LOW, NOW + 60),
    ("tokens low, requests fine", limits(Budget(900, 1000, NOW + 60), Budget(5, 100, NOW + 10)), NOW, Standing.LOW, NOW + 10),
    ("at exactly the threshold is not low", limits(Budget(100, 1000, NOW + 60)), NOW, Standing.OK, 0.0),
    ("requests at zero", limits(Budget(0, 1000, NOW + 60)), NOW, Standing.EXHAUSTED, NOW + 60),
    ("zero without a known limit", limits(Budget(0, None, NOW + 5)), NOW, Standing.EXHAUSTED, NOW + 5),
    ("both at zero: the later reset", limits(Budget(0, 10, NOW + 5), Budget(0, 10, NOW + 9)), NOW, Standing.EXHAUSTED, NOW + 9),
    ("exhausted outranks low", limits(Budget(1, 100, NOW + 5), Budget(0, 10, NOW + 9)), NOW, Standing.EXHAUSTED, NOW + 9),
    ("after the reset it is full again", limits(Budget(0, 1000, NOW + 60)), NOW + 60, Standing.UNKNOWN, 0.0),
    ("one budget reset, the other still low", limits(Budget(0, 10, NOW + 5), Budget(1, 100, NOW + 60)), NOW + 6,
     Standing.LOW, NOW + 60),
    ("a far reset is held at most max_hold_s", limits(Budget(0, 10, NOW + 86400)), NOW, Standing.EXHAUSTED, NOW + 300),
    ("past max_hold_s it is tried again", limits(Budget(0, 10, NOW + 86400)), NOW + 300, Standing.UNKNOWN, 0.0),
    ("a remaining count without a limit is not low", limits(Budget(3, None, NOW + 60)), NOW, Standing.UNKNOWN, 0.0),
])
def test_the_rule(name, reported, now, standing, until):
    verdict = RULE.judge(reported, now)
    assert (verdict.standing, verdict.until) == (standing, until), name


def test_arrange_moves_low_ones_last_and_drops_exhausted_keeping_the_strategys_order():
    v = {s: RULE.judge(r, NOW) for s, r in {
        "ok": limits(Budget(500, 1000, NOW + 60)), "low": limits(Budget(5, 1000, NOW + 60)),
        "zero": limits(Budget(0, 1000, NOW + 60)), "unknown": None}.items()}
    order = ["low", "zero", "ok", "low2", "unknown"]
    v["low2"] = v["low"]
    assert arrange(order, [v[n] for n in order]) == (["ok", "unknown", "low", "low2"], ["zero"])


# -- the router -------------------------------------------------------------------------------
def config(strategy="failover", max_attempts=3, rate_limits=""):
    return parse_config(f"""
routing: {{strategy: {strategy}, max_attempts: {max_attempts}{", rate_limits: " + rate_limits if rate_limits else ""}}}
providers:
  - {{name: alpha, kind: openai, base_url: "http://127.0.0.1:1", models: [m], priority: 0}}
  - {{name: beta, kind: openai, base_url: "http://127.0.0.1:2", models: [m], priority: 1}}
  - {{name: gamma, kind: anthropic, base_url: "http://127.0.0.1:3", models: [m], priority: 2}}
""")


def router(strategy="failover", clock=None, rate_limits=""):
    clock = clock or FakeClock(NOW)
    store = MemoryLimits()
    return Router(config(strategy, rate_limits=rate_limits), {}, MemoryBreakerStore(clock=clock), limits=store), clock


def test_an_exhausted_provider_is_skipped_until_its_reset_and_out_of_the_plan():
    r, clock = router()
    r.observe_limits("alpha", openai_headers(req=("0", "100", "2s")))
    assert r.pick("m").plan == ("beta", "gamma")
    clock.advance(2)
    assert r.pick("m").plan == ("alpha", "beta", "gamma")


def test_a_low_provider_goes_after_the_others_for_every_strategy():
    for strategy in ("failover", "round_robin", "weighted", "least_latency", "cost_optimized"):
        r, clock = router(strategy)
        r.observe_limits("alpha", openai_headers(req=("3", "100", "30s")))
        plans = [r.pick("m").plan for _ in range(6)]
        assert all(plan[-1] == "alpha" and plan[0] != "alpha" for plan in plans), strategy
        clock.advance(30)
        assert any(r.pick("m").plan[0] == "alpha" for _ in range(12)), strategy


def test_every_provider_exhausted_is_the_unavailable_answer_with_the_soonest_reset():
    r, clock = router()
    r.observe_limits("alpha", openai_headers(req=("0", "100", "7s")))
    r.observe_limits("beta", openai_headers(req=("0", "100", "3.2s")))
    r.observe_limits("gamma", anthropic_headers(tokens=("0", "1000", iso(NOW + 20))))
    with pytest.raises(ProviderUnavailable) as refused:
        r.pick("m")
    assert dict(refused.value.headers)["retry-after"] == "4"
    clock.advance(3.2)
    assert r.pick("m").provider.name == "beta"


def test_an_open_breaker_and_an_exhausted_budget_wait_for_the_later_of_the_two():
    r, clock = router()
    r.observe_limits("alpha", openai_headers(req=("0", "100", "50s")))
    for name in ("alpha", "beta", "gamma"):
        r.force(name, BreakerState.OPEN)  # opens for the breaker's 30 s
    with pytest.raises(ProviderUnavailable) as refused:
        r.pick("m")
    assert dict(refused.value.headers)["retry-after"] == "30"


def test_the_only_provider_exhausted_is_refused_not_sent():
    cfg = parse_config('providers: [{name: solo, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}]')
    clock = FakeClock(NOW)
    r = Router(cfg, {}, MemoryBreakerStore(clock=clock), limits=MemoryLimits())
    r.observe_limits("solo", openai_headers(req=("0", "100", "1m0s")))
    with pytest.raises(ProviderUnavailable) as refused:
        r.pick("m")
    assert dict(refused.value.headers)["retry-after"] == "60"


def test_turned_off_the_headers_change_nothing():
    r, _ = router(rate_limits="{enabled: false}")
    r.observe_limits("alpha", openai_headers(req=("0", "100", "60s")))
    assert r.pick("m").plan[0] == "alpha"
    assert r.verdict("alpha").standing is Standing.UNKNOWN


def test_the_threshold_is_configured():
    r, _ = router(rate_limits="{low_fraction: 0.5}")
    r.observe_limits("alpha", openai_headers(req=("40", "100", "60s")))
    assert r.pick("m").plan == ("beta", "gamma", "alpha")


# -- the shared record ------------------------------------------------------------------------
@pytest.mark.parametrize("reported", [
    limits(Budget(3, 100, NOW + 1), Budget(0, None, NOW + 2)),
    limits(None, Budget(7.5, 8, NOW + 9)),
    limits(Budget(0, None, NOW), None),
])
def test_records_round_trip(reported):
    assert decode(encode(reported)) == reported


def test_an_empty_record_is_none():
    assert decode(None) is None and decode((math.nan,) * 7) is None


def test_workers_share_the_record_through_the_file(tmp_path):
    clock = FakeClock(0.0)
    one, two = SharedLimits(tmp_path / "rl.bin", clock=clock), SharedLimits(tmp_path / "rl.bin", clock=clock)
    assert two.limits("alpha") is None
    reported = limits(Budget(0, 100, NOW + 5))
    one.observe("alpha", reported)
    assert one.limits("alpha") == reported  # a worker's own write at once
    assert two.limits("alpha") is None  # another's after its snapshot ages
    clock.advance(0.05)
    assert two.limits("alpha") == reported
    one.close()
    two.close()


# -- the mock ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds,text", [(0.02, "20ms"), (0.9994, "999ms"), (1, "1s"), (360, "6m0s"), (61.5, "1m1.5s"),
                                          (3723.5, "1h2m3.5s")])
def test_the_mock_spells_durations_as_openai(seconds, text):
    assert go_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.001)


def test_the_mock_budget_runs_down_and_refills():
    clock = FakeClock(NOW)
    window = RateLimitWindow(RateLimitSpec(requests_limit=10, requests_remaining=2, tokens_limit=500, window_s=4), clock)
    first = window.take(anthropic=False)
    assert (first["x-ratelimit-remaining-requests"], first["x-ratelimit-reset-requests"]) == ("1", "4s")
    assert parse(first, NOW).requests == Budget(1, 10, NOW + 4)
    window.take(anthropic=False)
    clock.advance(1)
    third = window.take(anthropic=True)
    assert third["anthropic-ratelimit-requests-remaining"] == "0"
    assert third["anthropic-ratelimit-requests-reset"] == rfc3339(NOW + 4)
    assert parse(third, clock.now).requests == Budget(0, 10, NOW + 4)
    clock.advance(3)
    assert window.take(anthropic=False)["x-ratelimit-remaining-requests"] == "9"


@pytest.mark.parametrize("payload", [
    {"requests_limit": 0}, {"requests_remaining": 11, "requests_limit": 10}, {"window_s": 0}, {"window_s": "1"},
    {"tokens_remaining": -1}, {"colour": "red"}, [1],
])
def test_the_mock_refuses_a_bad_budget(payload):
    with pytest.raises((ValueError, TypeError)):
        RateLimitSpec.from_json(payload)


# -- the 2-message path -----------------------------------------------------------------------
def test_envoys_access_log_entry_carries_the_headers_to_the_outcome():
    from edge_ext.extproc.access_log import outcome_of
    from edge_ext.extproc.pb import accesslog_pb2 as alpb

    entry = alpb.HTTPAccessLogEntry()
    entry.response.response_code.value = 200
    entry.response.response_headers.update({"retry-after": "3", **openai_headers()})
    outcome = outcome_of(entry)
    assert outcome.retry_after == "3" and outcome.limits == openai_headers()


def test_envoy_logs_every_header_the_rule_reads():
    from edge_ext.envoy_config.outcomes import outcome_log
    from edge_ext.routing.ratelimits import HEADERS

    logged = outcome_log(config(), "processor")["typed_config"]["additional_response_headers_to_log"]
    assert set(HEADERS) <= set(logged) and len(HEADERS) == 18
    every = {**openai_headers(), **anthropic_headers(requests=("1", "2", iso(NOW)), tokens=("1", "2", iso(NOW)),
                                                     input_tokens=("1", "2", iso(NOW)), output_tokens=("1", "2", iso(NOW)))}
    assert set(every) == set(HEADERS)
