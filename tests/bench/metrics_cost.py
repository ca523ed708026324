"""Micro-benchmark: the metric work of one request, as a worker does it.

    python -m tests.bench.metrics_cost [--requests 20000] [--rounds 5]

One "request" is what the servicer and the policy record for a routed, non-cacheable, priced
answer read in four ext_proc messages: the stream, one phase sample per message, first byte,
the charge, the request outcome and on_finish. Metrics live in a fresh multiprocess directory,
as in a worker started by the supervisor. Prints the best and median microseconds per request
over the rounds; where values are flushed in the background, one flush per round is included
(a round lasts well under a flush interval, so this counts flushes generously).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from decimal import Decimal

PHASES = ("request_headers", "request_body", "response_headers", "response_body")


def typical_state():
    from edge_ext.auth import Caller
    from edge_ext.cost.calc import CostResult
    from edge_ext.policy.accounting import Charge
    from edge_ext.policy.state import StreamState
    from edge_ext.usage import Usage

    st = StreamState(started=1.0, model="gpt-4o-mini", provider="oa", routed_at=1.001, response_status=200, outcome="routed",
                     upstream_api="openai", caller=Caller("team-key", "team-a", frozenset()))
    st.charge = Charge(Usage(input_tokens=12, output_tokens=8), CostResult(Decimal("0.0000066"), True))
    return st


def one_request(metrics, st) -> None:
    metrics.streams.inc()
    for phase in PHASES:
        metrics.observe_phase(phase, 0.00004)
    metrics.on_first_byte(st, 1.02)
    metrics.on_charge(st.provider, st.model, st.charge)
    metrics.requests.labels(outcome=st.outcome, provider=st.provider).inc()
    metrics.on_finish(st, 1.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="requests per round (bounded)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="edge-metrics-bench-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # before prometheus_client is imported, as in a worker
    os.environ["EDGE_EXT_METRICS_DIR"] = directory
    try:
        from edge_ext.metrics import WorkerMetrics

        metrics, st = WorkerMetrics(), typical_state()
        try:
            from edge_ext.metric_files import MetricsFlusher

            flush = MetricsFlusher(metrics, directory, 1.0).flush
        except ImportError:  # metrics written to the multiprocess files on every sample
            flush = None
        one_request(metrics, st)  # label children exist after the first request, as in a warm worker
        per_request = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for _ in range(args.requests):
                one_request(metrics, st)
            if flush is not None:
                flush()
            per_request.append((time.perf_counter() - started) / args.requests * 1e6)
        print(f"metric work per request: best {min(per_request):.1f} us, median {statistics.median(per_request):.1f} us "
              f"({args.rounds} rounds x {args.requests} requests)")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
