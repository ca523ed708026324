"""Transport and server settings measured on the floor processor, by CPU per request.

    python -m tests.bench.floor_variants [--duration 5] [--rounds 2] [--only NAME,...]

Each variant is the floor processor (tests/bench/floor.py, 2 messages) behind its own Envoy
running edge-ext's rendered bootstrap, with one Envoy-side or processor-side setting changed;
bare Envoy (the same bootstrap without ext_proc) runs beside them as the base. The variants run
in turn, `--rounds` times, each a bounded wrk run at 16 connections and then at one. On a shared
machine req/s is noise; what decides is CPU per request of the edge Envoy and of the processor
(utime+stime from /proc over the requests Envoy completed): at saturation their sum, against
bare Envoy's, bounds floor/bare. docs/performance.md records the results.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_ext.config import parse_config
from edge_ext.envoy_config.render import PROCESSOR_CLUSTER, render
from tests.bench.envoys import bare_bootstrap, floor_bootstrap, start_envoy, upstream_bootstrap
from tests.bench.run import cpu_seconds, envoy_counts, wrk
from tests.support import edge_config, free_port, http, stop, wait_until


def _ext_procs(bootstrap: dict) -> list[dict]:
    listener = bootstrap["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["typed_config"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"]


def _processor(bootstrap: dict) -> dict:
    return next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == PROCESSOR_CLUSTER)


def google_grpc(bootstrap: dict, sock: Path) -> None:
    for ext_proc in _ext_procs(bootstrap):
        ext_proc["grpc_service"] = {"google_grpc": {"target_uri": f"unix:{sock}", "stat_prefix": "floor"}}


def no_retry(bootstrap: dict, sock: Path) -> None:
    for ext_proc in _ext_procs(bootstrap):
        ext_proc["grpc_service"].pop("retry_policy", None)


def envoy_headers(bootstrap: dict, sock: Path) -> None:
    # As rendered before skip_envoy_headers: x-envoy-internal and x-forwarded-for on every stream.
    for ext_proc in _ext_procs(bootstrap):
        ext_proc["grpc_service"]["envoy_grpc"]["skip_envoy_headers"] = False


def h2_windows(bootstrap: dict, sock: Path) -> None:
    options = _processor(bootstrap)["typed_extension_protocol_options"]
    h2 = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]["http2_protocol_options"]
    h2.update({"initial_stream_window_size": 1048576, "initial_connection_window_size": 16777216})


def h2_keepalive(bootstrap: dict, sock: Path) -> None:
    options = _processor(bootstrap)["typed_extension_protocol_options"]
    h2 = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]["http2_protocol_options"]
    h2["connection_keepalive"] = {"interval": "30s", "timeout": "5s"}


def route_cache_clear(bootstrap: dict, sock: Path) -> None:
    # The filter-level setting instead of the reply's clear_route_cache (the route must be
    # matched again for x-edge-cluster either way).
    for ext_proc in _ext_procs(bootstrap):
        ext_proc["route_cache_action"] = "CLEAR"


@dataclass
class Variant:
    name: str
    envoy: Callable[[dict, Path], None] | None = None  # changes the floor's bootstrap
    args: list[str] = field(default_factory=list)  # floor.py options
    env: dict[str, str] = field(default_factory=dict)
    module: str = "tests.bench.floor"


VARIANTS = [
    Variant("default"),
    Variant("envoy: google_grpc client", google_grpc),
    Variant("envoy: no stream-start retry_policy", no_retry),
    Variant("envoy: x-envoy headers on (skip_envoy_headers false)", envoy_headers),
    Variant("envoy: h2 windows 1 MiB / 16 MiB", h2_windows),
    Variant("envoy: h2 connection_keepalive 30s", h2_keepalive),
    Variant("envoy: route_cache_action CLEAR", route_cache_clear),
    Variant("grpc: bdp_probe=0", args=["--option", "grpc.http2.bdp_probe=0"]),
    Variant("grpc: optimization_target=throughput", args=["--option", "grpc.optimization_target=throughput"]),
    Variant("grpc: optimization_target=latency", args=["--option", "grpc.optimization_target=latency"]),
    Variant("grpc: write_buffer_size=0", args=["--option", "grpc.http2.write_buffer_size=0"]),
    Variant("grpc: raw bytes, identity serializers", args=["--handler", "raw"]),
    Variant("grpc: GRPC_POLL_STRATEGY=poll", env={"GRPC_POLL_STRATEGY": "poll"}),
    Variant("grpc: event engine listener off", env={"GRPC_EXPERIMENTS": "-event_engine_listener,-event_engine_for_all_other_endpoints"}),
    Variant("grpc: asyncio loop", args=["--loop", "asyncio"]),
    Variant("grpclib on uvloop (reference)", module="tests.bench.floor_grpclib"),
]


@dataclass
class Running:
    url: str
    admin: str
    envoy: subprocess.Popen
    processor: subprocess.Popen | None


def measure(target: Running, connections: int, duration: int, tmp: Path) -> dict:
    pids = {"envoy": [target.envoy.pid], "proc": [target.processor.pid] if target.processor else []}
    before, cpu = envoy_counts(target.admin), {k: cpu_seconds(v) for k, v in pids.items()}
    result = wrk(target.url, connections, duration, tmp)
    after = envoy_counts(target.admin)
    requests = max(1, after[1] - before[1])
    used = {k: (cpu_seconds(v) - cpu[k]) / requests * 1e6 for k, v in pids.items()}
    return {**result, "envoy_us": used["envoy"], "proc_us": used["proc"], "msgs": (after[0] - before[0]) / requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated words: only the variants whose name holds one")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    variants = [v for v in VARIANTS if v.name == "default" or not wanted or any(w in v.name for w in wanted)]
    tmp = Path(tempfile.mkdtemp(prefix="edge-floor-"))
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        procs.append(start_envoy(upstream_bootstrap(up_port, free_port()), tmp, "upstream"))
        provider = {"name": "bench", "kind": "openai", "base_url": f"http://127.0.0.1:{up_port}",
                    "api_key_env": "BENCH_PROVIDER_KEY", "models": ["gpt-4o-mini"]}
        config = edge_config(tmp, [provider], envoy={"access_log": False, "admin": {"host": "127.0.0.1", "port": free_port()}})
        edge_bootstrap = render(parse_config(json.dumps(config)))
        targets: dict[str, Running] = {}
        port, admin = free_port(), free_port()
        envoy = start_envoy(bare_bootstrap(edge_bootstrap, port, admin, "provider_bench"), tmp, "bare")
        procs.append(envoy)
        targets["bare"] = Running(f"http://127.0.0.1:{port}/v1/chat/completions", f"http://127.0.0.1:{admin}", envoy, None)
        for index, variant in enumerate(variants):
            sock, port, admin = tmp / f"v{index}.sock", free_port(), free_port()
            processor = subprocess.Popen([sys.executable, "-m", variant.module, f"unix:{sock}", "provider_bench", "2", *variant.args],
                                         env={**os.environ, **variant.env})
            procs.append(processor)
            bootstrap = floor_bootstrap(copy.deepcopy(edge_bootstrap), port, admin, sock)
            if variant.envoy:
                variant.envoy(bootstrap, sock)
            envoy = start_envoy(bootstrap, tmp, f"v{index}")
            procs.append(envoy)
            targets[variant.name] = Running(f"http://127.0.0.1:{port}/v1/chat/completions", f"http://127.0.0.1:{admin}", envoy, processor)
        for name, target in targets.items():
            wait_until(lambda t=target: http("POST", t.url, b"{}", {"content-type": "application/json"}, timeout=1)[0] == 200,
                       timeout=120, what=name)
            wrk(target.url, 16, 1, tmp)
        results: dict[str, list[dict]] = {}
        names = list(targets)
        for turn in range(args.rounds):
            # Each round starts at another variant: no variant always runs first (or right
            # after bare), which on a shared machine showed as a bias of its own.
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                target = targets[name]
                results.setdefault(name, []).append(measure(target, 16, args.duration, tmp))
                results.setdefault(name + " 1conn", []).append(measure(target, 1, max(2, args.duration // 2), tmp))
        report({name: results[name] for name in sorted(results, key=lambda n: names.index(n.removesuffix(" 1conn")))}, args)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict[str, list[dict]], args) -> None:
    fields = ("rps", "p50_ms", "errors", "msgs", "envoy_us", "proc_us")
    med = {name: {k: statistics.median(r[k] for r in runs) for k in fields} for name, runs in results.items()}
    spread = {name: [round(r["envoy_us"] + r["proc_us"]) for r in runs] for name, runs in results.items()}
    print(f"\nfloor variants: {args.rounds} rounds x {args.duration}s at c16 (and half that at c1); medians")
    print(f"{'variant':<48}{'req/s':>8}{'p50 ms':>8}{'non2xx':>7}{'msgs':>5}{'envoy us':>9}{'proc us':>8}{'sum':>6}  per round")
    for name, m in med.items():
        print(f"{name:<48}{m['rps']:>8.0f}{m['p50_ms']:>8.2f}{m['errors']:>7.0f}{m['msgs']:>5.1f}{m['envoy_us']:>9.0f}"
              f"{m['proc_us']:>8.0f}{m['envoy_us'] + m['proc_us']:>6.0f}  {spread[name]}")


if __name__ == "__main__":
    raise SystemExit(main())
