"""Micro-benchmark: the semantic cache's lookup in one worker (index search, no embedding call).

    python -m tests.bench.semantic_index [--entries 100000] [--dims 384] [--queries 2000]

Fills one worker's index (edge_ext.semantic.index.LocalIndex) through its own ``add``, all in one
partition (the worst case: one tenant, one parameter set), with vectors clustered as text
embeddings are (topics, and paraphrases around each), then times ``search`` for queries near
stored entries and for queries far from all of them. Prints the median and p99 microseconds per
lookup and per insert, wall time and this thread's CPU time (on a shared machine the wall figures
include time the process waited for a core). The target: a lookup under 1 ms at 100k entries.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edge_ext.cache.entry import Entry
from edge_ext.semantic.index import LocalIndex, Record, unit


def clustered(rng: np.random.Generator, count: int, dims: int, topics: int) -> np.ndarray:
    centers = rng.standard_normal((topics, dims)).astype(np.float32)
    picks = rng.integers(0, topics, count)
    vectors = centers[picks] + 0.35 * rng.standard_normal((count, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(7)
    vectors = clustered(rng, args.entries, args.dims, topics=max(1, args.entries // 50))
    entry = Entry(b'{"choices":[{"message":{"content":"an answer of typical size"}}]}' * 8, 0.0, "openai", "mock")
    index = LocalIndex(args.entries, 64 * 1024 ** 3, 3600, time.monotonic)
    inserts = []
    started = time.perf_counter()
    for i, vector in enumerate(vectors):
        t = time.perf_counter()
        index.add(vector, Record("partition", f"prompt {i}", entry, "t-bench", "gpt-4o-mini"))
        inserts.append(time.perf_counter() - t)
    filled = time.perf_counter() - started

    near = [unit(vectors[i] + 0.05 * rng.standard_normal(args.dims)) for i in rng.integers(0, args.entries, args.queries)]
    far = [unit(rng.standard_normal(args.dims)) for _ in range(args.queries)]
    for _ in range(50):  # warm up caches and the allocator
        index.search("partition", near[0])
    results = {}
    for name, queries in (("near", near), ("far", far)):
        wall, cpu = [], []
        for q in queries:
            t, c = time.perf_counter(), time.thread_time()
            index.search("partition", q)
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - t)
        results[name] = wall, cpu

    print(f"semantic index: {len(index)} entries x {args.dims} dims in one partition, filled in {filled:.1f} s "
          f"({index.bytes / 1024 ** 2:.0f} MiB counted)")
    print(f"  insert: median {statistics.median(inserts) * 1e6:.0f} us, p99 {percentile(inserts, 0.99) * 1e6:.0f} us")
    for name, (wall, cpu) in results.items():
        print(f"  lookup ({name} a stored entry, {len(wall)} queries): wall median {statistics.median(wall) * 1e6:.0f} us, "
              f"p99 {percentile(wall, 0.99) * 1e6:.0f} us; cpu median {statistics.median(cpu) * 1e6:.0f} us, "
              f"p99 {percentile(cpu, 0.99) * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
