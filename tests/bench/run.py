"""Benchmark: bare Envoy vs Envoy + edge-ext on the same fast upstream, in one run.

    python -m tests.bench.run [--duration 10] [--connections 16]

The "floor processor" (tests/bench/floor.py) answers with constant replies behind the same
bootstrap: it is what grpc.aio and the two ext_proc round trips cost before any policy.
The upstream is an Envoy answering a canned chat.completion with a direct_response, so neither
side is limited by the upstream. "bare" is edge-ext's own rendered bootstrap with the ext_proc
filter removed and the route pinned to the provider cluster: the ratio isolates what edge-ext
costs. wrk drives load (Debian package `wrk`). Every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

from edge_ext.config import parse_config
from edge_ext.edge import envoy_binary
from edge_ext.envoy_config.render import render
from tests.support import edge_config, free_port, http, start_edge, stop, wait_until

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, how can I help?"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
}
SSE = "".join(
    "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}) + "\n\n"
    for delta, finish, extra in [({"role": "assistant", "content": ""}, None, {}), ({"content": "Hello"}, None, {}),
                                 ({"content": " there"}, None, {}), ({}, "stop", {})]
) + "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                           "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}) + "\n\ndata: [DONE]\n\n"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."},
                                                {"role": "user", "content": "Say hello to the benchmark."}]}


def upstream_bootstrap(port: int, admin: int) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "upstream",
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "route_config": {"virtual_hosts": [{"name": "u", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/sse/"},
                    "direct_response": {"status": 200, "body": {"inline_string": SSE}},
                    "response_headers_to_add": [{"header": {"key": "content-type", "value": "text/event-stream"}}],
                }, {
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": json.dumps(COMPLETION)}},
                    "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
                }]}]},
            }}]}],
        }]},
    }


def bare_bootstrap(edge_bootstrap: dict, port: int, admin: int, cluster: str) -> dict:
    bare = copy.deepcopy(edge_bootstrap)
    bare["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = bare["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_proc"]
    hcm["access_log"] = []
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        if "route" in route:
            route["route"].pop("cluster_header")
            route["route"]["cluster"] = cluster
    bare["static_resources"]["clusters"] = [c for c in bare["static_resources"]["clusters"] if c["name"] != "edge_ext_processor"]
    return bare


def floor_bootstrap(edge_bootstrap: dict, port: int, admin: int, sock: Path) -> dict:
    floor = copy.deepcopy(edge_bootstrap)
    floor["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = floor["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = []
    processor = floor["static_resources"]["clusters"][0]
    processor["load_assignment"]["endpoints"][0]["lb_endpoints"] = [{"endpoint": {"address": {"pipe": {"path": str(sock)}}}}]
    return floor


def start_envoy(bootstrap: dict, tmp: Path, name: str) -> subprocess.Popen:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    return subprocess.Popen([envoy_binary(), "-c", str(path), "--disable-hot-restart", "-l", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


BODIES = {
    "plain": REQUEST,  # not cacheable (no temperature 0): routed, answer passes through
    "stream": {**REQUEST, "model": "gpt-stream", "stream": True},
    "hit": {**REQUEST, "temperature": 0},  # the same cacheable body every time
}


# Cacheable and never seen before: a miss whose answer is stored (the full miss path). "routed":
# the same, for a model two providers serve, so it goes through a breaker-filtered plan and a
# failover cluster (whose attempt filter a healthy request skips).
UNIQUE = {"unique": REQUEST, "routed": {**REQUEST, "model": "gpt-routed"}}


def wrk(url: str, connections: int, duration: int, tmp: Path, kind: str = "plain") -> dict:
    script = tmp / f"post-{kind}.lua"
    if kind in UNIQUE:
        prefix, suffix = json.dumps({**UNIQUE[kind], "temperature": 0}).rsplit('."', 1)
        # Unique per run, per wrk thread and per request. (Lua's math.random is unseeded in wrk:
        # every thread of every run drew the same numbers, so later runs replayed earlier bodies
        # and measured cache hits under the name of misses.)
        lua_body = (f"local threads = 0\n"
                    f"setup = function(thread)\n  threads = threads + 1\n  thread:set('tid', threads)\nend\n"
                    f"request = function()\n  counter = (counter or 0) + 1\n"
                    f"  return wrk.format(nil, nil, nil, {json.dumps(prefix)} .. '. {uuid.uuid4().hex}-' .. tid .. '-' .. counter"
                    f" .. '.\"' .. {json.dumps(suffix)})\nend\n")
    else:
        lua_body = f"wrk.body = {json.dumps(json.dumps(BODIES[kind]))}\n"
    script.write_text(
        'wrk.method = "POST"\n'
        + lua_body +
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer sk-bench-client"\n'
    )
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "errors": int(non2xx.group(1)) if non2xx else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (bounded)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--workers", type=int, default=0, help="processor workers (0 = one per core)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    procs = []
    try:
        up_port, bare_port = free_port(), free_port()
        procs.append(start_envoy(upstream_bootstrap(up_port, free_port()), tmp, "upstream"))
        provider = {"name": "bench", "kind": "openai", "base_url": f"http://127.0.0.1:{up_port}",
                    "api_key_env": "BENCH_PROVIDER_KEY", "models": ["gpt-4o-mini"]}
        streamer = {**provider, "name": "bench-sse", "base_url": f"http://127.0.0.1:{up_port}/sse", "models": ["gpt-stream"]}
        second = {**provider, "name": "bench-b", "models": ["gpt-routed"]}
        provider["models"] = ["gpt-4o-mini", "gpt-routed"]
        config = edge_config(tmp, [provider, streamer, second], processor={"workers": args.workers or "auto"},
                             envoy={"access_log": False}, routing={"models": {"gpt-routed": "round_robin"}})
        config["envoy"]["admin"] = {"host": "127.0.0.1", "port": free_port()}
        config["envoy"]["access_log"] = False
        edge = start_edge(tmp / "edge", config, env={"BENCH_PROVIDER_KEY": "sk-bench-provider"})
        procs.append(edge.proc)
        edge_bootstrap = render(parse_config(json.dumps(config)))
        bare = bare_bootstrap(edge_bootstrap, bare_port, free_port(), "provider_bench")
        procs.append(start_envoy(bare, tmp, "bare"))
        floor_port, floor_sock = free_port(), tmp / "floor.sock"
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.bench.floor", f"unix:{floor_sock}", "provider_bench"]))
        procs.append(start_envoy(floor_bootstrap(edge_bootstrap, floor_port, free_port(), floor_sock), tmp, "floor"))
        bare_url = f"http://127.0.0.1:{bare_port}/v1/chat/completions"
        bare_sse_url = f"http://127.0.0.1:{bare_port}/sse/v1/chat/completions"
        floor_url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
        edge_url = f"{edge.url}/v1/chat/completions"
        wait_until(lambda: http("GET", f"http://127.0.0.1:{bare_port}/health/live", timeout=1)[0] == 200, what="bare envoy")
        wait_until(lambda: http("GET", f"http://127.0.0.1:{floor_port}/health/ready", timeout=1)[0] == 200, what="floor processor")
        for url in (bare_url, floor_url, edge_url):  # warm-up, and a sanity check that all answer 200
            status, _, body = http("POST", url, json.dumps(REQUEST).encode(), {"content-type": "application/json"})
            assert status == 200, (url, status, body)
            wrk(url, args.connections, 2, tmp)

        results: dict[str, list[dict]] = {}
        cases = (("bare", bare_url, args.connections, "plain"), ("floor processor", floor_url, args.connections, "plain"),
                 ("edge-ext pass", edge_url, args.connections, "plain"), ("edge-ext miss+store", edge_url, args.connections, "unique"),
                 ("edge-ext hit", edge_url, args.connections, "hit"),
                 ("edge-ext miss+routing", edge_url, args.connections, "routed"),
                 ("bare stream", bare_sse_url, args.connections, "stream"), ("edge-ext stream", edge_url, args.connections, "stream"),
                 ("bare 1conn", bare_url, 1, "plain"), ("floor 1conn", floor_url, 1, "plain"),
                 ("edge-ext pass 1conn", edge_url, 1, "plain"), ("edge-ext miss+store 1conn", edge_url, 1, "unique"),
                 ("edge-ext miss+routing 1conn", edge_url, 1, "routed"),
                 ("edge-ext hit 1conn", edge_url, 1, "hit"))
        for _ in range(args.rounds):
            for name, url, conns, kind in cases:
                results.setdefault(name, []).append(wrk(url, conns, args.duration, tmp, kind))
        report(results, args)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict[str, list[dict]], args) -> None:
    med = {name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms", "errors")} for name, runs in results.items()}
    print(f"\nedge-ext benchmark: {args.rounds} rounds x {args.duration}s, wrk -c{args.connections}; medians")
    print(f"{'case':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'ratio':>8}")
    for name, m in med.items():
        base = med["bare 1conn" if "1conn" in name else "bare stream" if "stream" in name else "bare"]
        print(f"{name:<22}{m['rps']:>10.0f}{m['p50_ms']:>10.2f}{m['p99_ms']:>10.2f}{m['errors']:>9.0f}{m['rps'] / base['rps']:>8.2f}")
    for case in ("pass", "miss+store", "miss+routing", "hit"):
        added = med[f"edge-ext {case} 1conn"]["p50_ms"] - med["bare 1conn"]["p50_ms"]
        print(f"p50 added by edge-ext ({case}) at 1 connection: {added:.2f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
