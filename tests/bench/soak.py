"""Soak: mixed traffic through `edge-ext up` for a bounded time, watching the workers' memory.

    python -m tests.bench.soak [--minutes 10] [--clients 6] [--interval 30]

Starts the bundled mock provider and a whole edge (Envoy and --workers processor workers) on
free loopback ports, then runs --clients threads until the time is up, each cycling through
cache hits, cache misses (a new prompt each time: every one is stored), uncached requests,
streams (OpenAI and Anthropic clients, translated too), malformed JSON, unknown models and
unknown keys, with client keys of several tenants under budgets and tokens-per-minute limits.
Every --interval it prints the worker RSS, open file descriptors, Envoy's RSS, requests and
unexpected statuses. The verdict: no unexpected status, no worker restarted, and the workers'
RSS after the warm-up (--warmup, default a quarter of the run, at most 2 minutes) never more than
5% above its value at the end of the warm-up. Exit status 0 when it holds, 1 otherwise. At the
end it also says how many ext_proc streams Envoy reset instead of half-closing them.

The L1 cache is configured with a bound small enough to fill during the warm-up (--l1-entries):
memory that grows until a configured bound and stays there is by design; a soak is to find what
grows past every bound. docs/performance.md lists each table and its bound.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_ext.auth import hash_key
from tests.support import Edge, MockProvider, edge_config, http, scrape, start_edge, start_mock, stop, worker_pids

MIB = 1024 * 1024
TENANTS = ("blue", "green", "red")
BAD_KEY = "sk-soak-unknown"


def client_key(index: int) -> str:
    return f"sk-soak-client-{index:03d}"


def soak_config(tmp: Path, mock: MockProvider, clients: int, workers: int, l1_entries: int) -> dict:
    providers = [
        {"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini", "gpt-4o"]},
        {"name": "an", "kind": "anthropic", "base_url": mock.url, "models": ["claude-haiku-4-5"]},
    ]
    keys = [{"id": f"client-{i}", "sha256": hash_key(client_key(i)), "tenant": TENANTS[i % len(TENANTS)],
             "tokens_per_minute": 100_000_000} for i in range(clients)]
    budgets = [{"scope": "tenant", "id": t, "period": "daily", "limit_usd": 1_000_000} for t in TENANTS]
    config = edge_config(tmp, providers, processor={"workers": workers}, auth={"keys": keys},
                         budgets={"limits": budgets}, cache={"l1_max_entries": l1_entries})
    config["envoy"]["access_log"] = False  # a 10-minute run would write a log the size of its traffic
    return config


def _openai(model: str, text: str, **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}], **extra}).encode()


def _anthropic(text: str, **extra) -> bytes:
    return json.dumps({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}],
                       **extra}).encode()


# kind -> (path, body for the n-th request of client c, expected status). "miss" bodies are new
# every time (the cache stores each); "hit" bodies repeat.
KINDS = {
    "hit": ("/v1/chat/completions", lambda c, n: _openai("gpt-4o-mini", f"soak hit {c % 3}", temperature=0), 200),
    "miss": ("/v1/chat/completions", lambda c, n: _openai("gpt-4o-mini", f"soak miss {c} {n}", temperature=0), 200),
    "uncached": ("/v1/chat/completions", lambda c, n: _openai("gpt-4o", f"soak plain {c} {n}"), 200),
    "stream": ("/v1/chat/completions", lambda c, n: _openai("gpt-4o-mini", f"soak stream {c} {n}", stream=True), 200),
    "translated_stream": ("/v1/chat/completions",
                          lambda c, n: _openai("claude-haiku-4-5", f"soak cross {c} {n}", stream=True), 200),
    "anthropic": ("/v1/messages", lambda c, n: _anthropic(f"soak anthropic {c} {n}", temperature=0), 200),
    "anthropic_stream": ("/v1/messages", lambda c, n: _anthropic(f"soak anthropic stream {c} {n}", stream=True), 200),
    "bad_json": ("/v1/chat/completions", lambda c, n: b'{"model": "gpt-4o-mini", "messages": [', 400),
    "unknown_model": ("/v1/chat/completions", lambda c, n: _openai("gpt-nope", "soak"), 404),
    "unknown_key": ("/v1/chat/completions", lambda c, n: _openai("gpt-4o-mini", "soak"), 401),
}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    kinds: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)  # (kind, status) -> count

    def add(self, kind: str, status: int, expected: int) -> None:
        with self.lock:
            self.requests += 1
            self.kinds[kind] += 1
            if status != expected:
                self.unexpected[(kind, status)] += 1


def client_loop(edge: Edge, index: int, deadline: float, tally: Tally) -> None:
    key = client_key(index)
    for n, kind in enumerate(itertools.cycle(KINDS)):
        if time.monotonic() >= deadline:
            return
        path, body, expected = KINDS[kind]
        headers = {"content-type": "application/json", "authorization": f"Bearer {BAD_KEY if kind == 'unknown_key' else key}"}
        try:
            status = http("POST", f"{edge.url}{path}", body(index, n), headers, timeout=30)[0]
        except OSError:
            status = 0  # connection refused or reset: unexpected whatever the kind
        tally.add(kind, status, expected)


@dataclass(frozen=True)
class Figures:
    rss: int = 0  # bytes
    anon: int = 0  # the process's own memory (heap): what a leak grows
    file: int = 0  # mapped files (libraries, SQLite's mmap): shared with the page cache
    fds: int = 0


def proc_figures(pid: int) -> Figures:
    """A process's memory and open file descriptors; zeros once it is gone."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        kib = {k: int(status[k].split()[0]) * 1024 for k in ("VmRSS", "RssAnon", "RssFile")}
        return Figures(kib["VmRSS"], kib["RssAnon"], kib["RssFile"], len(os.listdir(f"/proc/{pid}/fd")))
    except (OSError, KeyError, ValueError):
        return Figures()


def envoy_pid(edge: Edge) -> int | None:
    out = subprocess.run(["pgrep", "-P", str(edge.proc.pid), "-x", "envoy"], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.stdout.split() else None


@dataclass
class Sample:
    at: float
    requests: int
    unexpected: int
    workers: dict[int, Figures]  # by pid
    envoy: Figures

    def total(self, field: str) -> int:
        return sum(getattr(f, field) for f in self.workers.values())

    def line(self, previous: "Sample | None") -> str:
        rate = (self.requests - previous.requests) / (self.at - previous.at) if previous else 0.0

        def each(field, scale=MIB):
            return ", ".join(f"{getattr(f, field) / scale:.1f}" if scale != 1 else str(getattr(f, field))
                             for f in self.workers.values())

        return (f"t={self.at:6.0f}s  requests={self.requests} ({rate:.0f}/s)  unexpected={self.unexpected}  "
                f"worker RSS MiB [{each('rss')}] sum {self.total('rss') / MIB:.1f} (anon [{each('anon')}], "
                f"files [{each('file')}])  fds [{each('fds', 1)}]  envoy RSS {self.envoy.rss / MIB:.1f} MiB fds {self.envoy.fds}")


def sample(edge: Edge, tally: Tally, started: float, envoy: int | None) -> Sample:
    with tally.lock:
        requests, unexpected = tally.requests, sum(tally.unexpected.values())
    workers = {pid: proc_figures(pid) for pid in sorted(worker_pids(edge))}
    return Sample(time.monotonic() - started, requests, unexpected, workers, proc_figures(envoy) if envoy else Figures())


def verdict(samples: list[Sample], warmup_s: float, tally: Tally, tolerance: float = 0.05) -> tuple[bool, list[str]]:
    """Whether the run held, and why (one line each)."""
    lines, ok = [], True
    if tally.unexpected:
        ok = False
        lines.append(f"FAIL unexpected statuses (kind, status): {dict(tally.unexpected)}")
    pids = [set(s.workers) for s in samples]
    if any(p != pids[0] for p in pids):
        ok = False
        lines.append("FAIL the worker processes changed during the run (a worker died and was restarted)")
    after = [s for s in samples if s.at >= warmup_s]
    if len(after) < 2:
        return False, [*lines, f"FAIL too short: fewer than two samples after the {warmup_s:.0f}s warm-up"]
    base, peak, last = after[0].total("rss"), max(s.total("rss") for s in after), after[-1].total("rss")
    growth = peak / base - 1
    line = (f"worker RSS after warm-up: {base / MIB:.1f} MiB at {after[0].at:.0f}s, peak {peak / MIB:.1f}, "
            f"end {last / MIB:.1f} MiB ({growth:+.1%} at the peak; bound {tolerance:.0%})")
    if growth > tolerance:
        ok = False
        lines.append("FAIL " + line)
    else:
        lines.append("ok   " + line)
    first, end = after[0], after[-1]
    lines.append(f"     of which anon {first.total('anon') / MIB:.1f} -> {end.total('anon') / MIB:.1f} MiB, files "
                 f"{first.total('file') / MIB:.1f} -> {end.total('file') / MIB:.1f} MiB; worker fds {first.total('fds')} -> "
                 f"{end.total('fds')}; envoy RSS {first.envoy.rss / MIB:.1f} -> {end.envoy.rss / MIB:.1f} MiB")
    return ok, lines


@dataclass
class Report:
    samples: list[Sample]
    tally: Tally
    ok: bool
    lines: list[str]  # the verdict, one reason a line
    metrics: str  # the edge's /metrics at the end of the traffic
    # Envoy's ext_proc streams to the workers, and how many of them Envoy ended with a reset
    # (RST_STREAM) instead of waiting for the worker's status: grpc.aio leaks native memory on
    # every such stream (docs/performance.md, "Soak and what stays bounded").
    processor_streams: int = 0
    processor_resets: int = 0


def soak(minutes: float, clients: int = 6, interval: float = 30.0, warmup: float | None = None, workers: int = 2,
         l1_entries: int = 2000, out=sys.stdout, sections: dict | None = None) -> Report:
    """Runs the traffic and returns what was seen; ``sections`` are merged into the edge config."""
    duration = minutes * 60
    warmup_s = min(120.0, duration / 4) if warmup is None else warmup
    tmp = Path(tempfile.mkdtemp(prefix="edge-ext-soak-"))
    mock = start_mock("soak-mock", "--max-recorded", "100")
    edge = None
    try:
        config = soak_config(tmp, mock, clients, workers, l1_entries)
        for name, values in (sections or {}).items():
            config[name] = {**config.get(name, {}), **values}
        edge = start_edge(tmp, config)
        envoy = envoy_pid(edge)
        print(f"soak: {duration:.0f}s, {clients} clients, {workers} workers, warm-up {warmup_s:.0f}s, "
              f"sample every {interval:.0f}s; edge {edge.url}", file=out, flush=True)
        tally, started = Tally(), time.monotonic()
        deadline = started + duration
        threads = [threading.Thread(target=client_loop, args=(edge, i, deadline, tally), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        samples = [sample(edge, tally, started, envoy)]
        print(samples[0].line(None), file=out, flush=True)
        while time.monotonic() < deadline:
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
            samples.append(sample(edge, tally, started, envoy))
            print(samples[-1].line(samples[-2]), file=out, flush=True)
        for thread in threads:
            thread.join(timeout=60)
        ok, lines = verdict(samples, warmup_s, tally)
        streams, resets = (edge.envoy_stat(f"cluster.edge_ext_processor.{name}") for name in ("upstream_rq_total",
                                                                                              "upstream_rq_tx_reset"))
        lines.append(f"     processor streams {streams}, of which Envoy reset {resets}")
        for line in lines:
            print(line, file=out)
        print(f"soak: {'PASS' if ok else 'FAIL'} ({tally.requests} requests)", file=out, flush=True)
        return Report(samples, tally, ok, lines, scrape(edge), streams, resets)
    finally:
        if edge is not None:
            stop(edge.proc)
        stop(mock.proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the traffic runs (default 10)")
    parser.add_argument("--clients", type=int, default=6, help="client threads, each with its own key (default 6)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before the RSS baseline (default: a quarter "
                        "of the run, at most 120)")
    parser.add_argument("--workers", type=int, default=2, help="processor workers (default 2)")
    parser.add_argument("--l1-entries", type=int, default=2000, help="cache.l1_max_entries of the edge (default 2000)")
    args = parser.parse_args(argv)
    # SIGTERM (or a shell that ignores SIGINT in background jobs) still stops the edge it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 0 < args.minutes <= 24 * 60 or args.clients < 1 or args.interval <= 0:
        parser.error("--minutes must be within (0, 1440], --clients at least 1, --interval positive")
    report = soak(args.minutes, args.clients, args.interval, args.warmup, args.workers, args.l1_entries)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
