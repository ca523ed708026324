"""In-process cost of a pass request and of its outcome, for instruction counts.

    python -m tests.bench.pass_cost [--requests 1000] [--batch 16] [--mode outcomes] [--parts]
    valgrind --tool=callgrind --instr-atstart=no --vgdb-prefix=P python -m tests.bench.pass_cost --callgrind --vgdb-prefix=P

A worker built as ``edge-ext up`` builds it (``build_worker``: the benchmark's config, cache on
with its disk L2, accounting on, routing with breakers and the shared latency file), without
gRPC: the ext_proc servicer is fed the two messages Envoy sends for a pass request (request
headers, request body), and the access log servicer batches of entries shaped like Envoy's
(timings, response flags, the request's own edge_ext metadata, the usage Envoy extracted, the
served tag), serialized and parsed again as gRPC would.

Modes, each after the same warm-up and set-up: ``base`` does nothing more, ``requests`` drives
``--requests`` pass requests, ``outcomes`` the same plus one outcome entry per request, in
messages of ``--batch`` entries. Two ways to count:

- with ``--callgrind`` (second line above) the script switches counting on for the measured
  parts only and dumps each (``callgrind_control``): the ``totals`` of the dump of part
  ``requests`` / N is the request path per request, of part ``outcomes`` / N the outcome per
  entry (with ``--parts``: ``parse``, ``convert``, ``apply`` and ``metrics`` apart). Start-up
  runs uninstrumented, so this is the fast way. A private vgdb prefix keeps other
  ``callgrind_control`` calls on the machine (without a pid they act on every run) out.
- three runs, one per mode, counting everything: (requests - base) / N and
  (outcomes - requests) / N from each run's ``summary`` line.

The CPU time it prints is for a quick look only: on a loaded machine, count instructions.

``--gap-ms G`` (with ``--mode requests``) sends the requests one at a time, the process asleep
G ms before each, and prints the request path's own time per request: what one costs when it
finds the CPU's caches and predictors cold, as a worker at low load does (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."},
                                                {"role": "user", "content": "Say hello to the benchmark."}]}
USAGE = {"prompt_tokens": 19.0, "completion_tokens": 9.0, "cached_tokens": 0.0, "reasoning_tokens": 0.0}


def config(tmp: Path):
    from edge_ext.config import parse_config
    from tests.support import edge_config

    provider = {"name": "bench", "kind": "openai", "base_url": "http://127.0.0.1:9", "api_key_env": "BENCH_PROVIDER_KEY",
                "models": ["gpt-4o-mini", "gpt-routed"]}
    second = {**provider, "name": "bench-b", "models": ["gpt-routed"]}
    raw = edge_config(tmp, [provider, second], processor={"workers": 1}, envoy={"access_log": False},
                      routing={"models": {"gpt-routed": "round_robin"}})
    return parse_config(json.dumps(raw))


def messages(n: int):
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    body = json.dumps(REQUEST).encode()
    wire = []
    for i in range(n):
        headers = pb.HeaderMap()
        for key, value in {":authority": "127.0.0.1:10000", ":path": "/v1/chat/completions", ":method": "POST",
                           ":scheme": "http", "content-type": "application/json", "content-length": str(len(body)),
                           "user-agent": "wrk", "x-forwarded-proto": "http",
                           "x-request-id": f"5e1c7a4b-0000-4000-8000-{i:012d}"}.items():
            headers.headers.add(key=key, raw_value=value.encode())
        first = pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers))
        second = pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))
        wire.append((first.SerializeToString(), second.SerializeToString()))
    return wire


def entry(metadata, request_id: str):
    """An access log entry as Envoy's http_grpc logger fills it for a served pass request."""
    from google.protobuf import struct_pb2

    from edge_ext.extproc.pb import accesslog_pb2 as alpb

    e = alpb.HTTPAccessLogEntry()
    c = e.common_properties
    c.start_time.FromNanoseconds(1_795_737_600_123_456_000)
    for name, us in (("time_to_last_rx_byte", 40), ("time_to_first_upstream_tx_byte", 610), ("time_to_last_upstream_tx_byte", 620),
                     ("time_to_first_upstream_rx_byte", 980), ("time_to_last_upstream_rx_byte", 1010),
                     ("time_to_first_downstream_tx_byte", 1050), ("time_to_last_downstream_tx_byte", 1060), ("duration", 1060)):
        getattr(c, name).FromMicroseconds(us)
    c.upstream_remote_address.socket_address.address, c.upstream_remote_address.socket_address.port_value = "127.0.0.1", 18080
    c.upstream_cluster = "provider_bench"
    c.response_flags.SetInParent()  # Envoy always sets the message, all false for a clean answer
    c.metadata.filter_metadata["edge_ext"].CopyFrom(metadata.fields["edge_ext"].struct_value)
    usage = struct_pb2.Struct()
    usage.update(USAGE)
    c.metadata.filter_metadata["edge_usage"].CopyFrom(usage)
    c.route_name = "providers"
    c.custom_tags["served"] = "bench"
    c.upstream_request_attempt_count = 1
    e.request.path, e.request.request_id, e.request.request_body_bytes = "/v1/chat/completions", request_id, 140
    e.response.response_code.value, e.response.response_code_details = 200, "via_upstream"
    e.response.response_body_bytes = 350
    return e


async def outcome_parts(args, deps, entries: list[bytes]) -> None:
    """The access log servicer's work on the same entries, one part at a time, each dumped."""
    from edge_ext.extproc.access_log import outcome_of
    from edge_ext.extproc.pb import accesslog_pb2 as alpb

    messages = [alpb.StreamAccessLogsMessage.FromString(raw) for raw in entries]
    control(args, "--dump=parse")
    batches = [[outcome_of(e) for e in m.http_logs.log_entry] for m in messages]
    control(args, "--dump=convert")
    states = [deps.driver.outcomes(batch) for batch in batches]
    control(args, "--dump=apply")
    for batch, done in zip(batches, states):
        finished = []
        for outcome, st in zip(batch, done):
            st.routed_at = 1.0
            ttfb = outcome.upstream_ttfb_s
            finished.append((st, None if ttfb is None else 1.0 + ttfb, 1.0 + (outcome.duration_s or 0.0)))
        deps.metrics.on_outcomes(finished)
    control(args, "--dump=metrics")


def control(args, *command: str) -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``: counts only between "-i on" and
    "-i off", one dump (and a fresh count) per measured part."""
    if args.callgrind:
        prefix = [f"--vgdb-prefix={args.vgdb_prefix}"] if args.vgdb_prefix else []
        subprocess.run(["callgrind_control", *prefix, *command, str(os.getpid())], check=True, capture_output=True)


class Context:
    """What the access log servicer reads from: the batches, serialized as on the wire."""

    def __init__(self, batches: list[bytes]):
        self._batches = iter(batches)

    async def read(self):
        import grpc

        from edge_ext.extproc.pb import accesslog_pb2 as alpb

        raw = next(self._batches, None)
        return grpc.aio.EOF if raw is None else alpb.StreamAccessLogsMessage.FromString(raw)


async def drive(servicer, wire) -> list:
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    replies = []
    for first, second in wire:
        async def stream(first=first, second=second):
            yield pb.ProcessingRequest.FromString(first)
            yield pb.ProcessingRequest.FromString(second)

        async for reply in servicer.Process(stream(), None):
            replies.append(reply.SerializeToString())
    return replies


async def drive_apart(servicer, wire, gap_ms: float) -> list:
    """One request at a time, each after ``gap_ms`` of sleep; prints their mean time."""
    replies, spent = [], 0.0
    for pair in wire:
        time.sleep(gap_ms / 1000)
        started = time.perf_counter()
        replies += await drive(servicer, [pair])
        spent += time.perf_counter() - started
    print(f"request path after {gap_ms:g} ms asleep: {spent / len(wire) * 1e6:.0f} us per request (wall)")
    return replies


def batches(replies: list[bytes], batch: int) -> list[bytes]:
    from edge_ext.extproc.pb import accesslog_pb2 as alpb
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    bodies = [pb.ProcessingResponse.FromString(r) for r in replies if pb.ProcessingResponse.FromString(r).HasField("request_body")]
    out = []
    for start in range(0, len(bodies), batch):
        message = alpb.StreamAccessLogsMessage()
        message.identifier.log_name = "edge_ext_outcomes"
        message.http_logs.log_entry.extend(entry(b.dynamic_metadata, f"5e1c7a4b-{start + i}")
                                           for i, b in enumerate(bodies[start:start + batch]))
        out.append(message.SerializeToString())
    return out


async def started_worker(prefix: str):
    """The worker ``edge-ext up`` builds for the benchmark's config, its services started, and
    its ext_proc servicer."""
    from edge_ext.extproc.servicer import ExternalProcessor
    from edge_ext.wiring import build_worker

    os.environ.setdefault("BENCH_PROVIDER_KEY", "sk-bench-provider")
    deps = build_worker(config(Path(tempfile.mkdtemp(prefix=prefix))))
    for service in deps.services:
        await service.start()
    return deps, ExternalProcessor(deps.driver, deps.metrics, deps.clock)


async def main_async(args) -> None:
    from edge_ext.extproc.access_log import AccessLogService

    deps, servicer = await started_worker("edge-pass-cost-")
    batched = hasattr(deps.driver, "outcomes")  # else a build from before outcomes came in batches
    outcomes = AccessLogService(deps.driver.outcomes if batched else deps.driver.outcome, deps.metrics)
    # Warm-up: every code path taken once and the label children made, as in a warm worker.
    warm = await drive(servicer, messages(200))
    applied = []

    def counted(batch):
        done = deps.driver.outcomes(batch) if batched else [deps.driver.outcome(batch)]
        applied.extend(st is not None and st.charge is not None for st in done)
        return done if batched else done[0]

    await AccessLogService(counted, deps.metrics).StreamAccessLogs(None, Context(batches(warm, args.batch)))
    assert len(applied) == 200 and all(applied), "the warm-up's outcomes were not applied and charged"
    wire = messages(args.requests)
    gc.freeze()  # as a worker does once started
    # The entries are built before the measured part: only their parsing and use are counted.
    template = await drive(servicer, messages(1))
    entries = batches(template * args.requests, args.batch)
    spent = {}
    control(args, "-i", "on")
    if args.mode in ("requests", "outcomes"):
        started = time.process_time()
        replies = await (drive_apart(servicer, wire, args.gap_ms) if args.gap_ms else drive(servicer, wire))
        spent["request path"] = time.process_time() - started
        control(args, "--dump=requests")
        assert len(replies) == 2 * args.requests, len(replies)
    if args.mode == "outcomes" and args.parts:
        await outcome_parts(args, deps, entries)
    elif args.mode == "outcomes":
        started = time.process_time()
        await outcomes.StreamAccessLogs(None, Context(entries))
        spent["outcome"] = time.process_time() - started
        control(args, "--dump=outcomes")
    control(args, "-i", "off")
    # CPU time, for a quick look only: under callgrind, or on a loaded machine, count instructions.
    print(", ".join(f"{what} {seconds / args.requests * 1e6:.0f} us CPU" for what, seconds in spent.items()))
    for service in reversed(deps.services):
        await service.aclose()


def run_on_uvloop(coroutine) -> None:
    """As a worker runs: on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("base", "requests", "outcomes"), default="outcomes")
    parser.add_argument("--requests", type=int, default=1000, help="pass requests (bounded)")
    parser.add_argument("--batch", type=int, default=16, help="entries per access log message")
    parser.add_argument("--callgrind", action="store_true", help="running under callgrind with --instr-atstart=no: "
                        "count the measured parts only, dumped as parts 'requests' and 'outcomes'")
    parser.add_argument("--parts", action="store_true", help="with --callgrind: the outcomes' parsing, conversion, "
                        "policy and metrics dumped apart")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="with --mode requests: each request after this "
                        "long asleep, the request path's wall time printed (caches cold, as at low load)")
    parser.add_argument("--vgdb-prefix", default="", help="valgrind's --vgdb-prefix, if given (a private one keeps "
                        "other callgrind_control calls on the machine, which act on every run, from zeroing this one)")
    run_on_uvloop(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
