"""A short soak (tests/bench/soak.py) in the suite: mixed traffic from several clients through
`edge-ext up` for 20 seconds. What it can show in that time: every kind of request is answered
as expected, no worker dies, and no metric label takes a value from client input. Memory is
judged by the 10-minute run (`python -m tests.bench.soak`), not here: 20 s is inside warm-up."""

import io
import re

from tests.bench.soak import KINDS, TENANTS, soak


def test_twenty_seconds_of_mixed_traffic_is_answered_as_expected_with_bounded_metric_labels():
    out = io.StringIO()
    # A generous per-message deadline: on a loaded machine a 504 here would be the machine's, and
    # this test is about leaks and answers, not latency.
    report = soak(20 / 60, clients=3, interval=5, warmup=5, out=out, sections={"processor": {"message_timeout_ms": 10000}})
    assert set(report.tally.kinds) == set(KINDS), out.getvalue()
    assert not report.tally.unexpected, out.getvalue()
    assert len({frozenset(s.workers) for s in report.samples}) == 1, "a worker was restarted:\n" + out.getvalue()
    assert all(s.workers and all(f.rss and f.fds for f in s.workers.values()) for s in report.samples), out.getvalue()
    # Envoy waits for the workers' status instead of resetting the ext_proc streams (every reset
    # one leaks native memory in grpc.aio): only streams the processor ended itself (a tenth of
    # this traffic) are reset after it. Without the bootstrap's runtime flag, all of them are.
    assert report.processor_streams and report.processor_resets * 4 < report.processor_streams, out.getvalue()
    # Label values come from the config, never from what clients sent.
    values = set(re.findall(r'(?:model|tenant|provider|outcome)="([^"]*)"', report.metrics))
    assert "gpt-nope" not in values and not any("soak" in v for v in values), sorted(values)
    tenants = set(re.findall(r'tenant="([^"]*)"', report.metrics))
    assert tenants and tenants <= set(TENANTS), tenants
