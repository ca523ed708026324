"""Outcomes applied a batch at a time (one access log message): the same breakers, averages,
metrics and settlements as one at a time, and the entry read only for what the policy uses."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from google.protobuf import struct_pb2

from edge_ext.auth import Caller
from edge_ext.cost.admission import Admission, BudgetStep
from edge_ext.cost.calc import CostResult
from edge_ext.extproc.access_log import AccessLogService, outcome_of
from edge_ext.extproc.pb import accesslog_pb2 as alpb
from edge_ext.metric_values import snapshot
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.accounting import Charge
from edge_ext.policy.outcome import Outcome
from edge_ext.policy.state import StreamState
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.latency import LatencyTracker
from edge_ext.routing.record_file import RecordFile
from edge_ext.routing.shared_latency import SharedLatencyTracker
from edge_ext.usage import Usage
from tests.outcome_world import chat, make_policy, outcome_of as outcome_for, routed
from tests.fakes import MemoryLedger


# -- the entry ----------------------------------------------------------------------------------

def entry(flags=(), route=None, usage=None, timings=None, status=200, retry_after=None) -> alpb.HTTPAccessLogEntry:
    e = alpb.HTTPAccessLogEntry()
    c = e.common_properties
    for name in flags:
        setattr(c.response_flags, name, True)
    c.response_flags.SetInParent()
    for name, nanos in (timings or {}).items():
        getattr(c, name).FromNanoseconds(nanos)
    if route is not None:
        struct = struct_pb2.Struct()
        struct.update(route)
        c.metadata.filter_metadata["edge_ext"].CopyFrom(struct)
    if usage is not None:
        struct = struct_pb2.Struct()
        struct.update(usage)
        c.metadata.filter_metadata["edge_usage"].CopyFrom(struct)
    if status:
        e.response.response_code.value = status
    if retry_after is not None:
        e.response.response_headers["retry-after"] = retry_after
    e.request.request_id = "r1"
    return e


@pytest.mark.parametrize("flags, expected", [
    pytest.param((), "", id="none-set"),
    pytest.param(("upstream_retry_limit_exceeded",), "URX", id="one"),
    pytest.param(("upstream_retry_limit_exceeded", "upstream_connection_failure", "upstream_remote_reset"), "UF,UR,URX",
                 id="several-in-the-classifiers-order"),
])
def test_response_flags_are_envoys_short_flags(flags, expected):
    assert outcome_of(entry(flags)).flags == expected


@pytest.mark.parametrize("timings, ttfb, duration", [
    pytest.param({}, None, None, id="no-upstream-at-all"),
    pytest.param({"time_to_last_rx_byte": 40_000, "time_to_first_upstream_tx_byte": 600_000,
                  "time_to_first_upstream_rx_byte": 1_980_000_123, "time_to_last_upstream_rx_byte": 2_010_000_000},
                 1_980_000_123e-9 - 40e-6, 2.01 - 600e-6, id="nanoseconds-kept"),
    pytest.param({"time_to_first_upstream_tx_byte": 600_000, "time_to_first_upstream_rx_byte": 900_000},
                 300e-6, None, id="from-the-first-byte-sent-without-the-last-received"),
    pytest.param({"time_to_first_upstream_tx_byte": 900_000, "time_to_first_upstream_rx_byte": 600_000}, None, None,
                 id="clock-backwards-ignored"),
    pytest.param({"time_to_last_rx_byte": 0, "time_to_first_upstream_tx_byte": 0, "time_to_first_upstream_rx_byte": 0,
                  "time_to_last_upstream_rx_byte": 0}, 0.0, 0.0, id="marks-set-at-zero-are-marks"),
    pytest.param({"time_to_last_rx_byte": 0, "time_to_first_upstream_tx_byte": 600_000,
                  "time_to_first_upstream_rx_byte": 900_000}, 900e-6, None, id="from-a-last-byte-at-zero"),
])
def test_timings_are_seconds_between_envoys_marks(timings, ttfb, duration):
    outcome = outcome_of(entry(timings=timings))
    assert outcome.upstream_ttfb_s == (pytest.approx(ttfb, abs=1e-12) if ttfb is not None else None)
    assert outcome.duration_s == (pytest.approx(duration, abs=1e-12) if duration is not None else None)


def test_only_the_metadata_the_policy_reads_is_converted():
    route = {"outcome": "1", "provider": "oa", "model": "m", "cache": "off", "grant": "sig", "plan": "oa,an",
             "tenant": "acme", "key_id": "k", "hold": "h1", "hold_expires": "1.5", "holds": "tenant:acme|d|3",
             "tpm": "tpm:k:1", "tpm_tokens": "10"}
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "input_tokens": 5}
    outcome = outcome_of(entry(route=route, usage=usage, retry_after="7"))
    assert outcome.route == {k: v for k, v in route.items() if k not in ("cache", "grant")}
    assert outcome.usage == {"prompt_tokens": 3.0, "completion_tokens": 4.0, "input_tokens": 5.0}
    assert outcome.retry_after == "7"
    assert Admission.from_metadata(outcome.route) is not None


@pytest.mark.parametrize("usage, expected", [
    pytest.param({"prompt_tokens": 0, "cached_tokens": 7}, {"prompt_tokens": 0.0, "cached_tokens": 7.0}, id="a-zero-is-a-count"),
    pytest.param({"prompt_tokens": "12", "completion_tokens": None, "output_tokens": True, "input_tokens": 3},
                 {"input_tokens": 3.0}, id="other-kinds-left-out"),
    pytest.param({"prompt_tokens": 5, "colour": 3}, {"prompt_tokens": 5.0}, id="unknown-keys-left-out"),
])
def test_only_numbers_of_the_usage_keys_are_read(usage, expected):
    assert outcome_of(entry(usage=usage)).usage == expected


@pytest.mark.parametrize("route, expected", [
    pytest.param({"refusal_fallback": "safe", "holds": "x", "tpm_tokens": "5", "provider": "oa"}, {"provider": "oa"},
                 id="a-group-without-its-first-key-is-not-read"),
    pytest.param({"refused": "oa", "refusal_fallback": "safe", "tpm": "tpm:k:1", "tpm_tokens": "5"},
                 {"refused": "oa", "refusal_fallback": "safe", "tpm": "tpm:k:1", "tpm_tokens": "5"}, id="groups-read-whole"),
])
def test_keys_written_together_are_read_together(route, expected):
    assert outcome_of(entry(route=route)).route == expected


def test_an_entry_without_metadata_or_status_is_read_as_nothing():
    outcome = outcome_of(entry(status=0))
    assert (outcome.status, outcome.route, outcome.usage, outcome.retry_after) == (0, {}, {}, None)


# -- breakers and the policy ----------------------------------------------------------------------

@pytest.mark.parametrize("statuses, state", [
    pytest.param((500, 500, 500, 500, 502), BreakerState.OPEN, id="fifth-failure-opens"),
    pytest.param((500, 500, 500, 500, 502, 200), BreakerState.OPEN, id="success-after-opening-counted-late"),
    pytest.param((500, 500, 200, 500, 500, 500), BreakerState.CLOSED, id="success-in-between-resets-in-order"),
    pytest.param((500, 500, 500, 500, 200, 502), BreakerState.CLOSED, id="order-kept-within-the-batch"),
])
async def test_a_batch_counts_on_the_breaker_like_one_outcome_at_a_time(statuses, state):
    results = []
    for batched in (True, False):
        driver, _ = make_policy(MemoryLedger())
        decisions = [(await routed(driver, chat()))[1] for _ in statuses]
        outcomes = [outcome_for(d, status=s) for d, s in zip(decisions, statuses)]
        if batched:
            driver.outcomes(outcomes)
        else:
            for outcome in outcomes:
                driver.outcome(outcome)
        results.append(driver.policy.router.states()["oa"])
    assert results == [state, state]


async def test_an_outcome_that_fails_is_left_out_not_its_batch(monkeypatch):
    driver, _ = make_policy(MemoryLedger())
    decisions = [(await routed(driver, chat()))[1] for _ in range(3)]
    outcomes = [outcome_for(d, status=200, usage={"prompt_tokens": 5.0, "completion_tokens": 1.0}) for d in decisions]
    outcomes[1] = outcomes[1]._replace(route={**outcomes[1].route, "est_in": "x"}, usage={})  # an estimate of "x" tokens
    done = driver.outcomes(outcomes)
    assert done[1] is None and all(st is not None and st.charge is not None for st in (done[0], done[2]))


# -- latency ------------------------------------------------------------------------------------

SAMPLES = [
    pytest.param([("a", 0.2)], id="one"),
    pytest.param([("a", 0.2), ("b", 1.0), ("a", 0.4), ("a", 0.1), ("b", 0.5)], id="two-providers-interleaved"),
    pytest.param([("a", 0.2), ("a", float("nan")), ("a", -1.0), ("a", 0.3)], id="bogus-samples-dropped"),
    pytest.param([("a", float("inf"))], id="nothing-valid"),
]


@pytest.mark.parametrize("samples", SAMPLES)
def test_a_batch_of_latency_samples_folds_to_the_same_averages(tmp_path, samples):
    one_by_one, batched = SharedLatencyTracker(tmp_path / "one"), SharedLatencyTracker(tmp_path / "all")
    memory = LatencyTracker()
    for provider, seconds in samples:
        one_by_one.observe(provider, seconds)
    batched.observe_all(samples)
    memory.observe_all(samples)
    for provider in ("a", "b"):
        expected = one_by_one.ewma(provider)
        assert batched.ewma(provider) == expected and memory.ewma(provider) == expected
        assert batched.samples(provider) == one_by_one.samples(provider) == memory.samples(provider)
    # Another worker's view of the file: the same rows.
    assert SharedLatencyTracker(tmp_path / "all").ewma("a") == one_by_one.ewma("a")


def test_a_batch_takes_the_file_lock_once(tmp_path, monkeypatch):
    tracker = SharedLatencyTracker(tmp_path / "lat")
    locks = []
    monkeypatch.setattr("edge_ext.routing.record_file.fcntl.flock", lambda fd, mode: locks.append(mode))
    tracker.observe_all([("a", 0.1), ("b", 0.2), ("a", 0.3)])
    assert len(locks) == 2  # locked, unlocked


def test_records_past_the_capacity_are_left_out_of_a_batch(tmp_path):
    import struct

    records = RecordFile(tmp_path / "r", struct.Struct("<d"), 2, magic=b"TESTREC1")
    done = records.update_all({name: (lambda row, v=v: (v,)) for v, name in enumerate(("a", "b", "c"))})
    assert done == {"a": (0.0,), "b": (1.0,)}
    assert records.snapshot()[1] == {"a": (0.0,), "b": (1.0,)}


# -- metrics ------------------------------------------------------------------------------------

def state(provider="oa", status=200, retried=(), same_api=True, charge=True, estimated=False, outcome="routed",
          routed_at=1.0) -> StreamState:
    st = StreamState(started=0.0, model="gpt-4o-mini", provider=provider, outcome=outcome, routed_at=routed_at,
                     response_status=status, retried=retried, same_api=same_api, upstream_api="openai",
                     caller=Caller("k", "acme", frozenset()))
    if charge:
        st.charge = Charge(Usage(input_tokens=12, output_tokens=8), CostResult(Decimal("0.000012"), True), estimated)
    return st


@pytest.mark.parametrize("finished", [
    pytest.param([(state(), 1.2, 1.5)], id="one"),
    pytest.param([(state(), 1.2, 1.5), (state(status=503, charge=False), None, 1.1), (state(provider="an"), 1.3, 1.4),
                  (state(), 1.05, 1.06)], id="several-label-sets"),
    pytest.param([(state(retried=("an",), estimated=True), 1.2, 1.5), (state(same_api=False), 1.1, 1.2)],
                 id="failover-estimate-translation"),
    pytest.param([(state(status=0, charge=False), None, 1.0), (state(outcome="invalid_api_key", routed_at=0.0), None, 1.0)],
                 id="no-answer-and-refused"),
])
def test_metrics_of_a_batch_are_those_of_one_outcome_at_a_time(finished):
    assert_batched_as_one_at_a_time(finished)


def assert_batched_as_one_at_a_time(finished) -> None:
    one_by_one, batched = WorkerMetrics(), WorkerMetrics()
    for st, first_byte, end in finished:
        if first_byte is not None:
            one_by_one.on_first_byte(st, first_byte)
        one_by_one.on_finish(st, end)
    batched.on_outcomes(finished)
    assert samples(batched) == samples(one_by_one)


def samples(metrics: WorkerMetrics) -> dict:
    """Every series' values, the sums rounded (a batch adds a label set's amounts before its counter)."""
    families = [v for v in vars(metrics).values() if hasattr(v, "series")]
    return {(name, tuple(labels)): [v if isinstance(v, list) else round(v, 12) for v in values]
            for name, series in snapshot(families).items() for labels, *values in series}


async def test_the_access_log_records_a_batchs_metrics_from_its_outcomes():
    driver, _ = make_policy(MemoryLedger())
    metrics = WorkerMetrics()
    decisions = [(await routed(driver, chat()))[1] for _ in range(3)]
    message = alpb.StreamAccessLogsMessage()
    for decision in decisions:
        e = entry(route=dict(decision.metadata), usage={"prompt_tokens": 45, "completion_tokens": 7},
                  timings={"time_to_last_rx_byte": 0, "time_to_first_upstream_rx_byte": 200_000_000,
                           "time_to_first_upstream_tx_byte": 1_000_000, "time_to_last_upstream_rx_byte": 301_000_000})
        e.response.response_code_details = "via_upstream"
        e.common_properties.upstream_request_attempt_count = 1
        message.http_logs.log_entry.append(e)

    class Context:
        def __init__(self):
            self.messages = [message]

        async def read(self):
            import grpc

            return self.messages.pop() if self.messages else grpc.aio.EOF

    await AccessLogService(driver.outcomes, metrics).StreamAccessLogs(None, Context())
    assert metrics.responses.child(("oa", "2xx")).value == 3
    assert metrics.tenant_tokens.child(("acme",)).value == 3 * 52
    ttft = metrics.time_to_first_token.child(("oa", "gpt-4o-mini"))
    assert sum(ttft.counts) == 3 and ttft.sum == pytest.approx(0.6)
    duration = metrics.request_duration.child(("oa", "gpt-4o-mini"))
    assert sum(duration.counts) == 3 and duration.sum == pytest.approx(0.9)


# -- settlements --------------------------------------------------------------------------------

class FailingOnce(MemoryLedger):
    def __init__(self):
        super().__init__()
        self.increments: list[tuple[str, int]] = []

    async def incr(self, key, amount, ttl_s):
        self.increments.append((key, amount))
        if key == "tpm:bad":
            raise ConnectionError("store away")
        return await super().incr(key, amount, ttl_s)


@pytest.mark.parametrize("windows, written", [
    pytest.param(["tpm:a", "tpm:b"], [("tpm:a", 5), ("tpm:b", 5)], id="in-order"),
    pytest.param(["tpm:a", "tpm:bad", "tpm:b"], [("tpm:a", 5), ("tpm:bad", 5), ("tpm:b", 5)], id="a-failure-stops-none"),
    pytest.param([None, "tpm:a"], [("tpm:a", 5)], id="nothing-held-nothing-written"),
])
async def test_a_batchs_settlements_are_written_by_one_task_each_on_its_own(windows, written):
    ledger = FailingOnce()
    budgets = BudgetStep([], ledger, lambda: 0.0)
    charge = Charge(Usage(input_tokens=10, output_tokens=5), CostResult(Decimal("0"), True))
    budgets.settle_all([(Admission((), window, 10), charge) for window in windows])
    assert len(budgets._writes) == 1
    await budgets.flush()
    await asyncio.sleep(0)
    assert ledger.increments == written


def test_outcome_is_a_plain_record():
    outcome = Outcome(request_id="r", status=200, details="via_upstream")
    assert outcome.usage == {} and outcome.route == {} and outcome.flags == ""


# -- the outcome's arithmetic, against the reference one ------------------------------------------

def _reference_usage_of(api: str, extracted: dict) -> Usage | None:
    """The extraction put back into a usage object and read like the answer's own JSON."""
    from edge_ext.usage import READERS

    reader, usage = READERS[api], {}
    for key, path in reader.paths.items():
        if key in extracted:
            node = usage
            for part in path[:-1]:
                node = node.setdefault(part, {})
            value = extracted[key]
            node[path[-1]] = int(value) if float(value).is_integer() and value >= 0 else -1
    return reader.body({"usage": usage}) if usage else None


@pytest.mark.parametrize("api", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("extracted", [
    pytest.param({}, id="nothing"),
    pytest.param({"prompt_tokens": 19.0, "completion_tokens": 9.0, "cached_tokens": 0.0, "reasoning_tokens": 0.0}, id="openai"),
    pytest.param({"prompt_tokens": 10.0, "cached_tokens": 40.0, "completion_tokens": 5.0, "reasoning_tokens": 9.0},
                 id="openai-parts-above-their-whole"),
    pytest.param({"input_tokens": 10.0, "output_tokens": 4.0, "input_cached_tokens": 6.0, "output_reasoning_tokens": 3.0,
                  "cache_read_input_tokens": 2.0, "cache_creation_input_tokens": 1.0}, id="anthropic-and-responses"),
    pytest.param({"prompt_tokens": 1.5, "completion_tokens": -3.0, "input_tokens": float("nan"),
                  "output_tokens": float("inf"), "cached_tokens": 1e20}, id="not-counts"),
])
def test_the_extracted_usage_reader_reads_like_the_answers_json(api, extracted):
    from edge_ext.policy.outcome import usage_of

    assert usage_of(api, extracted) == _reference_usage_of(api, extracted)


def _prices():
    import random

    from edge_ext.cost.pricing import Price, load_pricing

    table = load_pricing()
    shipped = [table.price(m) for m in ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "text-embedding-3-small")]
    rnd = random.Random(7)
    made = [Price(input=Decimal(rnd.randrange(10**8)).scaleb(-places), output=Decimal(rnd.randrange(10**8)).scaleb(-places),
                  cached_input=Decimal(rnd.randrange(10**5)).scaleb(-places), cache_write=Decimal(rnd.randrange(10**3)))
            for places in (0, 2, 3, 4, 7, 12) for _ in range(5)]
    return [p for p in shipped if p is not None] + made + [
        Price(input=Decimal("1E+2"), output=Decimal("0"), cached_input=Decimal("0.000000000001"), cache_write=Decimal("5"))]


def test_cost_in_whole_numbers_is_the_decimal_cost_to_the_digit():
    import random

    from edge_ext.cost.calc import Rates, cost, cost_at

    rnd = random.Random(11)
    for price in _prices():
        rates = Rates(price)
        for _ in range(100):
            usage = Usage(*(rnd.choice((0, 1, 7, 500_000, rnd.randrange(10 ** rnd.randrange(1, 13)))) for _ in range(5)))
            expected, got = cost(usage, price), cost_at(usage, rates)
            assert got.as_tuple() == expected.as_tuple(), (price, usage)


def test_cost_in_whole_numbers_refuses_negative_counts():
    from edge_ext.cost.calc import Rates, cost_at

    with pytest.raises(ValueError):
        cost_at(Usage(input_tokens=-1), Rates(_prices()[0]))


@pytest.mark.parametrize("charges", [
    pytest.param([("oa", "m", Usage(12, 8), Decimal("0.000012"))], id="one"),
    pytest.param([("oa", "m", Usage(12, 8, 3, 2, 1), Decimal("0.1")), ("an", "c", Usage(1, 2), None),
                  ("oa", "m", Usage(0, 0), Decimal("0")), ("oa", "n", Usage(5, 5), Decimal("0.25")),
                  ("an", "c", Usage(3, 4), None)], id="several-label-sets-priced-or-not"),
])
def test_metrics_of_a_batch_of_charges_are_those_of_one_at_a_time(charges):
    one_by_one, batched = WorkerMetrics(), WorkerMetrics()
    made = [(p, m, Charge(u, CostResult(usd, usd is not None))) for p, m, u, usd in charges]
    for provider, model, charge in made:
        one_by_one.on_charge(provider, model, charge)
    batched.on_charges(made)
    assert samples(batched) == samples(one_by_one)


async def test_a_batchs_charges_reach_the_metrics_once_in_order():
    from edge_ext.cost.pricing import load_pricing
    from edge_ext.policy.accounting import Accounting
    from edge_ext.policy.outcome import OutcomeStep

    batches = []
    accounting = Accounting(load_pricing(), on_charges=lambda charges: batches.append(list(charges)))
    driver, _ = make_policy(MemoryLedger())
    decisions = [(await routed(driver, chat()))[1] for _ in range(3)]
    outcomes = [outcome_for(d, status=200, usage={"prompt_tokens": 5.0 + i, "completion_tokens": 1.0})
                for i, d in enumerate(decisions)]
    step = OutcomeStep(driver.policy.router, None, accounting, lambda: 0.0)
    done = step.apply_all(outcomes)
    assert len(batches) == 1 and [c for _, _, c in batches[0]] == [st.charge for st in done]
    assert [c.usage.input_tokens for _, _, c in batches[0]] == [5, 6, 7]


def _refused_on(st: StreamState, fallback: str) -> StreamState:
    st.refused, st.refusal_fallback = "oa", fallback
    return st


def test_metrics_of_requests_that_finished_alike_are_folded_to_the_same_samples():
    unpriced = state()
    unpriced.charge = Charge(Usage(input_tokens=3, output_tokens=1), CostResult.unpriced(), False)
    finished = [(state(), 1.2, 1.5), (state(), 1.1, 1.7), (_refused_on(state(provider="an"), "safe"), 1.3, 1.4),
                (state(retried=("an", "oa")), 1.2, 1.3), (unpriced, None, 1.9), (state(), 1.2, 1.5),
                (_refused_on(state(provider="an"), "safe"), None, 1.6), (state(status=503, charge=False), None, 1.1),
                (state(estimated=True, same_api=False), 1.05, 1.06), (state(outcome="budget_exceeded", routed_at=0.0), None, 1.0)]
    assert_batched_as_one_at_a_time(finished)


# -- failover and refusals, from the outcome --------------------------------------------------------

TWO = """\
providers:
  - {name: oa, kind: openai, base_url: "http://127.0.0.1:18080", models: [gpt-4o-mini]}
  - {name: ob, kind: openai, base_url: "http://127.0.0.1:18082", models: [gpt-4o-mini]}
routing: {models: {gpt-4o-mini: round_robin}}
"""


@pytest.mark.parametrize("served, attempts, extra, provider, retried, refused", [
    pytest.param("first", 1, {}, "first", (), "", id="first-choice"),
    pytest.param("second", 2, {}, "second", ("first",), "", id="failed-over"),
    pytest.param("", 2, {}, "second", ("first",), "", id="failed-over-untagged-by-attempts"),
    pytest.param("second", 2, {"refused": "first", "refusal_fallback": "safe"}, "second", (), "first",
                 id="refusal-retried-on-its-fallback"),
    pytest.param("elsewhere", 9, {}, "first", (), "", id="unknown-provider-and-attempts"),
])
async def test_an_outcome_names_who_answered_and_who_failed_before(served, attempts, extra, provider, retried, refused):
    driver, _ = make_policy(MemoryLedger(), TWO)
    _, decision = await routed(driver, chat())
    route = dict(decision.metadata)
    plan = route["plan"].split(",")
    names = {"first": plan[0], "second": plan[1], "": "", "elsewhere": "elsewhere"}
    extra = {k: names.get(v, v) for k, v in extra.items()}
    outcome = outcome_for(decision, status=200, served=names[served], attempts=attempts,
                          usage={"prompt_tokens": 5.0, "completion_tokens": 1.0})._replace(route={**route, **extra})
    st = driver.outcome(outcome)
    assert st.provider == names[provider] and st.retried == tuple(names[r] for r in retried)
    assert (st.refused, st.refusal_fallback) == ((names[refused], "safe") if refused else ("", ""))
    assert st.charge is not None and st.attempts == attempts
