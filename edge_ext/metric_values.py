"""In-memory counters and histograms of one worker, with prometheus_client's call shape.

prometheus_client in multiprocess mode takes a lock and writes an mmap on every ``inc``,
``observe`` and ``labels`` call; at a dozen samples per request that was about a tenth of a
worker's CPU. Here a sample adds to a float or a list slot. The values reach Prometheus as a
snapshot the worker writes every flush interval (edge_ext.metric_files), and the same families
render them for a scrape (``families``). Only the worker's event loop thread updates them, so
there is no lock.

Series labels are rendered sorted by name, as the multiprocess collector rendered them, so
every sample line keeps its exact text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

# A snapshot: family name -> series; a counter series is [labels, value], a histogram series
# [labels, per-bucket counts (not cumulative, +Inf last), sum]. Labels are sorted by name.
Snapshot = dict[str, list]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class _HistogramChild:
    __slots__ = ("counts", "sum", "_bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount (Prometheus' "le"); past the last, +Inf.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family:
    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.sorted_names = tuple(sorted(self.labelnames))
        # Keyed by the label values in the caller's order; their text, sorted by name, aside.
        self._children: dict = {}
        self._texts: dict = {}
        self._key = itemgetter(*self.labelnames) if self.labelnames else None
        if not self.labelnames:
            self._solo = self._children[()] = self._new_child()
            self._texts[()] = ()

    def _new_child(self):
        raise NotImplementedError

    def labels(self, **values: str):
        if self._key is None or len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(values)}")
        try:
            key = self._key(values)
        except KeyError:
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(values)}") from None
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
            self._texts[key] = tuple(str(values[n]) for n in self.sorted_names)
        return child

    def child(self, key: tuple[str, ...]):
        """The series of the label values ``key``, in ``labelnames`` order: ``labels`` without
        its keywords, for callers that add up many samples per label set first."""
        child = self._children.get(key)
        return child if child is not None else self.labels(**dict(zip(self.labelnames, key)))

    def series(self) -> list:
        return [self._series(self._texts[key], child) for key, child in self._children.items()]

    def _series(self, texts: tuple[str, ...], child) -> list:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._solo.inc(amount)

    @property
    def value(self) -> float:
        return self._solo.value

    def _series(self, texts, child: _CounterChild) -> list:
        return [list(texts), child.value]


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *, buckets: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: bucket bounds must increase")
        super().__init__(name, documentation, labelnames)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def observe(self, amount: float) -> None:
        self._solo.observe(amount)

    def _series(self, texts, child: _HistogramChild) -> list:
        return [list(texts), list(child.counts), child.sum]


def snapshot(families: Iterable[_Family]) -> Snapshot:
    return {f.name: f.series() for f in families}


def merge(snapshots: Iterable[Snapshot]) -> dict[str, dict[tuple[str, ...], list]]:
    """The sum of every snapshot, series by series: name -> labels -> [value] or [counts, sum]."""
    total: dict[str, dict[tuple[str, ...], list]] = {}
    for snap in snapshots:
        for name, series in snap.items():
            by_labels = total.setdefault(name, {})
            for labels, *values in series:
                key = tuple(labels)
                have = by_labels.get(key)
                if have is None:
                    by_labels[key] = [list(v) if isinstance(v, list) else v for v in values]
                elif len(values) == 1:
                    have[0] += values[0]
                else:
                    counts, add = have[0], values[0]
                    if len(counts) != len(add):
                        continue  # buckets changed between versions: keep the first shape
                    have[0] = [a + b for a, b in zip(counts, add)]
                    have[1] += values[1]
    return total


def unmerge(total: dict[str, dict[tuple[str, ...], list]]) -> Snapshot:
    """A merged total back in snapshot form (what is written for workers that exited)."""
    return {name: [[list(labels), *values] for labels, values in series.items()] for name, series in total.items()}


def families(specs: Iterable[_Family], total: dict[str, dict[tuple[str, ...], list]], *, with_empty: bool) -> Iterator[Metric]:
    """Prometheus families of the merged values, shaped by the worker's family definitions."""
    for spec in specs:
        series = total.get(spec.name, {})
        if not series and not with_empty:
            continue
        if isinstance(spec, Histogram):
            family = HistogramMetricFamily(spec.name, spec.documentation, labels=spec.sorted_names)
            les = [floatToGoString(b) for b in spec.bounds] + ["+Inf"]
            for labels, (counts, total_sum) in series.items():
                cumulative, buckets = 0.0, []
                for le, count in zip(les, counts):
                    cumulative += count
                    buckets.append((le, cumulative))
                family.add_metric(list(labels), buckets, total_sum)
        else:
            family = CounterMetricFamily(spec.name, spec.documentation, labels=spec.sorted_names)
            for labels, (value,) in series.items():
                family.add_metric(list(labels), value)
        yield family
