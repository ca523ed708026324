import math
import random
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from edge_ext.routing.latency import NO_LATENCY, LatencyTracker
from edge_ext.routing.strategies import (
    REGISTRY, Candidate, CostOptimized, Failover, LeastLatency, RouteContext, RoundRobin, Weighted, create,
    estimated_cost,
)

D = Decimal


def cands(*names, **per_name):
    return [Candidate(name, f"{name}-model", **per_name.get(name, {})) for name in names]


def ctx(seed=0, latency=NO_LATENCY, tokens_in=1000, max_out=None, rng=None):
    return RouteContext(tokens_in, max_out, rng or random.Random(seed), latency)


def names(ordered):
    return [c.provider for c in ordered]


class Scripted:
    """A Random whose random() returns the given values in turn."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


# --- registry ---------------------------------------------------------------------------------
def test_registry_names():
    assert set(REGISTRY) == {"round_robin", "weighted", "failover", "least_latency", "cost_optimized"}
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert hasattr(create(name), "order")


def test_create_passes_options_and_rejects_unknown_names():
    assert create("least_latency", epsilon=0.2).epsilon == 0.2
    assert create("cost_optimized", default_output_tokens=10).default_output_tokens == 10
    with pytest.raises(ValueError, match="unknown routing strategy 'fastest'; known: cost_optimized, failover"):
        create("fastest")


def test_create_gives_independent_state():
    a, b = create("round_robin"), create("round_robin")
    group = cands("x", "y")
    a.order(group, ctx())
    assert names(b.order(group, ctx())) == ["x", "y"]


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"weight": -1}, "weight", id="negative-weight"),
    pytest.param({"weight": math.inf}, "weight", id="infinite-weight"),
    pytest.param({"weight": math.nan}, "weight", id="nan-weight"),
    pytest.param({"price_in": D("-1")}, "price_in", id="negative-input-price"),
    pytest.param({"price_out": D("NaN")}, "price_out", id="nan-output-price"),
])
def test_candidate_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Candidate("p", "m", **kwargs)


@hsettings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(REGISTRY)),
    st.lists(st.tuples(st.floats(0, 10), st.integers(-2, 2), st.none() | st.integers(0, 50)), min_size=0, max_size=6),
    st.integers(0, 2**32),
)
def test_every_strategy_returns_a_permutation(name, specs, seed):
    group = [Candidate(f"p{i}", "m", weight=w, priority=p, price_in=None if price is None else D(price),
                       price_out=None if price is None else D(price))
             for i, (w, p, price) in enumerate(specs)]
    latency = LatencyTracker()
    for i, c in enumerate(group[::2]):
        latency.observe(c.provider, 0.1 * (i + 1))
    strategy = create(name)
    for _ in range(3):
        ordered = strategy.order(group, ctx(seed, latency))
        assert sorted(names(ordered)) == sorted(names(group))


# --- round robin ------------------------------------------------------------------------------
def test_round_robin_rotates_and_keeps_config_order_behind():
    rr, group = RoundRobin(), cands("a", "b", "c")
    orders = [names(rr.order(group, ctx())) for _ in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_round_robin_counts_per_group():
    rr, g1, g2 = RoundRobin(), cands("a", "b"), cands("x", "y", "z")
    assert names(rr.order(g1, ctx()))[0] == "a"
    assert names(rr.order(g2, ctx()))[0] == "x"
    assert names(rr.order(g1, ctx()))[0] == "b"
    assert names(rr.order(g2, ctx()))[0] == "y"


@pytest.mark.parametrize("group", [pytest.param([], id="empty"), pytest.param(cands("solo"), id="one")])
def test_round_robin_trivial_groups(group):
    assert RoundRobin().order(group, ctx()) == group


# --- weighted ---------------------------------------------------------------------------------
def test_weighted_first_pick_follows_weights_over_1000_picks():
    group = cands("a", "b", "c", a={"weight": 5}, b={"weight": 3}, c={"weight": 2})
    rng, strategy = random.Random(20240601), Weighted()
    firsts = Counter(strategy.order(group, ctx(rng=rng))[0].provider for _ in range(1000))
    for name, share in {"a": 0.5, "b": 0.3, "c": 0.2}.items():
        assert abs(firsts[name] / 1000 - share) < 0.04, firsts


def test_weighted_fallbacks_are_weighted_too():
    # Without replacement: once "a" is drawn first, "b" (9) should follow far more often than "c" (1).
    group = cands("a", "b", "c", a={"weight": 1000}, b={"weight": 9}, c={"weight": 1})
    rng = random.Random(7)
    seconds = Counter(Weighted().order(group, ctx(rng=rng))[1].provider for _ in range(1000))
    assert abs(seconds["b"] / 1000 - 0.9) < 0.04, seconds


def test_weighted_zero_weight_goes_last():
    group = cands("zero", "a", "b", zero={"weight": 0})
    for seed in range(50):
        assert names(Weighted().order(group, ctx(seed)))[-1] == "zero"


def test_weighted_is_deterministic_for_a_seed():
    group = cands("a", "b", "c", "d")
    assert [names(Weighted().order(group, ctx(3))) for _ in range(5)] == [names(Weighted().order(group, ctx(3)))] * 5


def test_weighted_survives_random_returning_zero():
    assert names(Weighted().order(cands("a", "b"), ctx(rng=Scripted(0.0, 0.5)))) == ["b", "a"]


# --- failover ---------------------------------------------------------------------------------
@pytest.mark.parametrize("priorities, expected", [
    pytest.param({}, ["a", "b", "c"], id="all-equal-config-order"),
    pytest.param({"a": 1}, ["b", "c", "a"], id="lower-number-first"),
    pytest.param({"a": 2, "b": 1, "c": 1}, ["b", "c", "a"], id="ties-keep-config-order"),
    pytest.param({"c": -1}, ["c", "a", "b"], id="negative-priority-first"),
])
def test_failover(priorities, expected):
    group = cands("a", "b", "c", **{n: {"priority": p} for n, p in priorities.items()})
    assert names(Failover().order(group, ctx())) == expected


# --- least latency ----------------------------------------------------------------------------
def tracker(**seconds):
    t = LatencyTracker()
    for name, value in seconds.items():
        t.observe(name, value)
    return t


@pytest.mark.parametrize("samples, expected", [
    pytest.param({"a": 0.3, "b": 0.1, "c": 0.2}, ["b", "c", "a"], id="fastest-first"),
    pytest.param({"a": 0.3, "c": 0.2}, ["b", "c", "a"], id="unmeasured-first-to-get-measured"),
    pytest.param({}, ["a", "b", "c"], id="nothing-measured-config-order"),
    pytest.param({"a": 0.2, "b": 0.2, "c": 0.1}, ["c", "a", "b"], id="ties-keep-config-order"),
])
def test_least_latency_ranking_without_exploration(samples, expected):
    order = LeastLatency(epsilon=0).order(cands("a", "b", "c"), ctx(latency=tracker(**samples)))
    assert names(order) == expected


@pytest.mark.parametrize("draws, expected", [
    pytest.param((0.5,), ["b", "c", "a"], id="no-exploration-above-epsilon"),
    pytest.param((0.01, 0.0), ["c", "b", "a"], id="explore-picks-second-best"),
    pytest.param((0.01, 0.99), ["a", "b", "c"], id="explore-picks-slowest"),
])
def test_least_latency_exploration(draws, expected):
    order = LeastLatency(epsilon=0.05).order(cands("a", "b", "c"), ctx(rng=Scripted(*draws), latency=tracker(a=0.3, b=0.1, c=0.2)))
    assert names(order) == expected


def test_least_latency_explores_about_epsilon_of_the_time():
    latency, rng, strategy = tracker(a=0.3, b=0.1, c=0.2), random.Random(11), LeastLatency(epsilon=0.1)
    firsts = Counter(strategy.order(cands("a", "b", "c"), ctx(rng=rng, latency=latency))[0].provider for _ in range(1000))
    assert abs(firsts["b"] / 1000 - 0.9) < 0.03, firsts
    assert firsts["a"] > 20 and firsts["c"] > 20  # the recovered provider gets noticed


def test_least_latency_sees_a_recovered_provider():
    latency = tracker(a=2.0, b=0.5)
    strategy = LeastLatency(epsilon=0)
    assert names(strategy.order(cands("a", "b"), ctx(latency=latency)))[0] == "b"
    for _ in range(5):  # exploration traffic measures "a" fast again
        latency.observe("a", 0.1)
    assert names(strategy.order(cands("a", "b"), ctx(latency=latency)))[0] == "a"


@pytest.mark.parametrize("epsilon", [-0.1, 1.5, math.nan])
def test_least_latency_rejects_bad_epsilon(epsilon):
    with pytest.raises(ValueError):
        LeastLatency(epsilon=epsilon)


# --- cost -------------------------------------------------------------------------------------
PRICED = {
    "cheap-in": {"price_in": D("0.10"), "price_out": D("10")},
    "cheap-out": {"price_in": D("5"), "price_out": D("0.50")},
    "free": {"price_in": D("0"), "price_out": D("0")},
    "half": {"price_in": D("1")},
}


@pytest.mark.parametrize("group, tokens_in, max_out, expected", [
    # cheap-in: 1000*0.10 + 256*10 = 2660; cheap-out: 1000*5 + 256*0.5 = 5128
    pytest.param(["cheap-out", "cheap-in"], 1000, None, ["cheap-in", "cheap-out"], id="default-256-output-tokens"),
    # cheap-in: 100000*0.1 + 10*10 = 10100; cheap-out: 500000 + 5 = 500005
    pytest.param(["cheap-out", "cheap-in"], 100_000, 10, ["cheap-in", "cheap-out"], id="long-prompt-short-answer"),
    # cheap-in: 10*0.1 + 4000*10 = 40001; cheap-out: 50 + 2000 = 2050
    pytest.param(["cheap-in", "cheap-out"], 10, 4000, ["cheap-out", "cheap-in"], id="short-prompt-long-answer"),
    pytest.param(["unpriced", "cheap-in", "free"], 1000, None, ["free", "cheap-in", "unpriced"], id="unpriced-last"),
    pytest.param(["half", "unpriced", "cheap-in"], 1000, None, ["cheap-in", "half", "unpriced"], id="half-priced-counts-as-unpriced-in-config-order"),
    pytest.param(["free", "cheap-in"], 0, 0, ["free", "cheap-in"], id="zero-tokens-ties-keep-config-order"),
])
def test_cost_optimized(group, tokens_in, max_out, expected):
    candidates = [Candidate(n, "m", **PRICED.get(n, {})) for n in group]
    assert names(CostOptimized().order(candidates, ctx(tokens_in=tokens_in, max_out=max_out))) == expected


def test_estimated_cost_is_exact_decimal_per_million():
    c = Candidate("p", "m", price_in=D("2.50"), price_out=D("10.00"))
    assert estimated_cost(c, ctx(tokens_in=1234, max_out=567)) == D("0.008755")
    assert estimated_cost(c, ctx(tokens_in=1000, max_out=None)) == D("0.00506")
    assert estimated_cost(Candidate("p", "m"), ctx()) is None


# --- latency tracker --------------------------------------------------------------------------
def test_latency_ewma():
    t = LatencyTracker(alpha=0.5)
    assert t.ewma("p") is None
    t.observe("p", 1.0)
    assert t.ewma("p") == 1.0  # first sample taken as is
    t.observe("p", 0.0)
    t.observe("p", 1.0)
    assert t.ewma("p") == pytest.approx(0.75)
    assert t.samples("p") == 3 and t.ewma("other") is None


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "fast"])
def test_latency_ignores_bad_samples(bad):
    t = LatencyTracker()
    t.observe("p", 0.2)
    t.observe("p", bad)
    assert t.ewma("p") == 0.2 and t.samples("p") == 1


@pytest.mark.parametrize("alpha", [0, -0.1, 1.01])
def test_latency_rejects_alpha(alpha):
    with pytest.raises(ValueError):
        LatencyTracker(alpha=alpha)
