"""In-memory metric values, their snapshot files and the supervisor's sum of them."""

import asyncio
import json

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge_ext.metric_files import EXITED, MetricsFlusher, WorkerFilesCollector, fold_exited
from edge_ext.metric_values import Counter, Histogram, families, merge, snapshot

BUCKETS = (0.001, 0.01, 0.1, 1)


def samples(registry: CollectorRegistry) -> set:
    """Every sample as (name, sorted labels, value); the creation stamps only a live client has are left out."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for f in text_string_to_metric_families(text) for s in f.samples if not s.name.endswith("_created")}


def render(fams) -> CollectorRegistry:
    class Fixed:
        def collect(self):
            return list(fams)

    registry = CollectorRegistry()
    registry.register(Fixed())
    return registry


def replay(counter, histogram, ops) -> None:
    for op, labels, amount in ops:
        if op == "inc":
            (counter.labels(**labels) if labels else counter).inc(amount)
        else:
            (histogram.labels(**labels) if labels else histogram).observe(amount)


CASES = [
    pytest.param((), [("inc", {}, 1), ("inc", {}, 2.5), ("observe", {}, 0.002)], id="unlabelled"),
    pytest.param(("zeta", "alpha"), [("inc", {"zeta": "z", "alpha": "a"}, 1), ("inc", {"alpha": "a", "zeta": "z"}, 3),
                                     ("inc", {"zeta": "y", "alpha": "a"}, 0.25)], id="labels-in-any-order"),
    pytest.param(("phase",), [("observe", {"phase": "body"}, v) for v in (0.0005, 0.001, 0.0011, 0.5, 1, 7, -1)],
                 id="histogram-bounds-and-overflow"),
    pytest.param(("phase",), [("observe", {"phase": "a"}, 0.01), ("observe", {"phase": "b"}, 0.01), ("inc", {"phase": "a"}, 0)],
                 id="several-series"),
]


@pytest.mark.parametrize("labelnames, ops", CASES)
def test_samples_are_those_prometheus_client_would_expose(labelnames, ops):
    theirs = CollectorRegistry()
    their_counter = prometheus_client.Counter("c", "a counter", labelnames, registry=theirs)
    their_histogram = prometheus_client.Histogram("h", "a histogram", labelnames, buckets=BUCKETS, registry=theirs)
    ours_counter, ours_histogram = Counter("c", "a counter", labelnames), Histogram("h", "a histogram", labelnames, buckets=BUCKETS)
    replay(their_counter, their_histogram, ops)
    replay(ours_counter, ours_histogram, ops)
    ours = [ours_counter, ours_histogram]
    assert samples(render(families(ours, merge([snapshot(ours)]), with_empty=True))) == samples(theirs)


def test_labels_are_rendered_sorted_by_name_as_the_multiprocess_collector_did():
    c = Counter("edge_ext_requests", "requests", ["provider", "outcome"])
    c.labels(provider="oa", outcome="routed").inc()
    text = generate_latest(render(families([c], merge([snapshot([c])]), with_empty=False))).decode()
    assert 'edge_ext_requests_total{outcome="routed",provider="oa"} 1.0' in text


@pytest.mark.parametrize("call", [
    pytest.param(lambda c, h: c.labels(outcome="x"), id="missing-label"),
    pytest.param(lambda c, h: c.labels(outcome="x", provider="p", extra="e"), id="extra-label"),
    pytest.param(lambda c, h: c.labels(outcome="x", providr="p"), id="misspelt-label"),
    pytest.param(lambda c, h: h.labels(phase="p"), id="labels-on-an-unlabelled-family"),
    pytest.param(lambda c, h: c.labels(outcome="x", provider="p").inc(-1), id="counter-going-down"),
    pytest.param(lambda c, h: Histogram("h2", "h", buckets=(1, 0.5)), id="buckets-not-increasing"),
])
def test_misuse_is_refused_as_prometheus_client_refuses_it(call):
    counter, histogram = Counter("c", "c", ["outcome", "provider"]), Histogram("h", "h", buckets=BUCKETS)
    with pytest.raises(ValueError):
        call(counter, histogram)


def worker_values(requests: float, phase_seconds: float) -> list:
    c, h = Counter("edge_ext_requests", "r", ["outcome"]), Histogram("edge_ext_processing_seconds", "p", ["phase"], buckets=BUCKETS)
    c.labels(outcome="routed").inc(requests)
    h.labels(phase="request_body").observe(phase_seconds)
    return [c, h]


def specs() -> list:
    return worker_values(0, 0)


def scrape(directory) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in WorkerFilesCollector(directory, specs).collect() for s in f.samples}


def test_the_scrape_is_the_sum_of_the_workers_and_survives_a_worker_exit(tmp_path):
    a, b = worker_values(3, 0.005), worker_values(4, 0.5)
    (tmp_path / "101.json").write_text(json.dumps(snapshot(a)))
    (tmp_path / "102.json").write_text(json.dumps(snapshot(b)))
    total = scrape(tmp_path)
    assert total[("edge_ext_requests_total", (("outcome", "routed"),))] == 7
    assert total[("edge_ext_processing_seconds_bucket", (("le", "0.01"), ("phase", "request_body")))] == 1
    assert total[("edge_ext_processing_seconds_count", (("phase", "request_body"),))] == 2
    assert total[("edge_ext_processing_seconds_sum", (("phase", "request_body"),))] == pytest.approx(0.505)

    fold_exited(tmp_path, 101)
    fold_exited(tmp_path, 101)  # a second exit report of the same pid changes nothing
    assert scrape(tmp_path) == total  # counters never go down when a worker goes away
    assert sorted(p.name for p in tmp_path.iterdir()) == ["102.json", EXITED]
    fold_exited(tmp_path, 102)
    assert scrape(tmp_path) == total


def test_a_family_appears_once_a_worker_has_a_series_of_it(tmp_path):
    assert scrape(tmp_path) == {}
    only_requests = Counter("edge_ext_requests", "r", ["outcome"])
    only_requests.labels(outcome="routed").inc()
    (tmp_path / "7.json").write_text(json.dumps(snapshot([only_requests])))
    assert {name for name, _ in scrape(tmp_path)} == {"edge_ext_requests_total"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""], ids=["broken", "not-an-object", "empty"])
def test_an_unreadable_worker_file_is_skipped_not_fatal(tmp_path, content):
    (tmp_path / "1.json").write_text(content)
    (tmp_path / "2.json").write_text(json.dumps(snapshot(worker_values(2, 0.1))))
    assert scrape(tmp_path)[("edge_ext_requests_total", (("outcome", "routed"),))] == 2


class Values:
    def __init__(self):
        self.requests = Counter("edge_ext_requests", "r", ["outcome"])

    def families(self):
        return [self.requests]


def written(path) -> float:
    series = json.loads(path.read_text())["edge_ext_requests"]
    return sum(value for _, value in series)


async def test_the_flusher_writes_at_start_every_interval_and_at_close(tmp_path):
    values = Values()
    flusher = MetricsFlusher(values, tmp_path, interval_s=0.05)
    await flusher.start()
    path = next(tmp_path.glob("*.json"))
    assert written(path) == 0
    values.requests.labels(outcome="routed").inc()
    for _ in range(100):  # bounded: 100 x 10 ms, against an interval of 50 ms
        if written(path) == 1:
            break
        await asyncio.sleep(0.01)
    assert written(path) == 1
    values.requests.labels(outcome="routed").inc(5)  # between two intervals: only the last flush sees it
    await flusher.aclose()
    assert written(path) == 6
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
