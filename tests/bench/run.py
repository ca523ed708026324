"""Benchmark: bare Envoy vs Envoy + edge-ext on the same fast upstream, in one run.

    python -m tests.bench.run [--duration 10] [--connections 16]

The "floor processor" (tests/bench/floor.py) answers with constant replies behind the same
bootstrap: it is what grpc.aio and the ext_proc round trips cost before any policy, at 2
messages (request headers and body) and at 4 (the answer's headers and body too).
The upstream is an Envoy answering a canned chat.completion with a direct_response, so neither
side is limited by the upstream. "bare" is edge-ext's own bootstrap without the processor
(tests/bench/envoys.py): the ratio isolates what edge-ext costs. wrk drives load (Debian package `wrk`). Every run is bounded by --duration. The "msgs"
column is the ext_proc messages per request Envoy's listener filter sent during the run, "cpu us"
the processor's CPU time per request (all its processes: the floor's one, edge-ext's workers),
"envoy us" the edge Envoy's (bare's too): at saturation their sum, against bare's, bounds the ratio.
docs/performance.md explains the cases and the ratios printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_ext.config import parse_config
from edge_ext.envoy_config.render import render
from tests.bench.envoys import bare_bootstrap, floor_bootstrap, start_envoy, upstream_bootstrap
from tests.support import edge_config, free_port, http, start_edge, start_mock, stop, wait_until, worker_pids

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."},
                                                {"role": "user", "content": "Say hello to the benchmark."}]}
BODIES = {
    "plain": REQUEST,  # not cacheable (no temperature 0): routed; its answer is read for usage
    "stream": {**REQUEST, "model": "gpt-stream", "stream": True},
    "hit": {**REQUEST, "temperature": 0},  # the same cacheable body every time
}


# Cacheable and never seen before: a miss whose answer is stored (the full miss path). "routed":
# the same, for a model two providers serve, so it goes through a breaker-filtered plan and a
# failover cluster (whose attempt filter a healthy request skips). "semantic-miss": the same for
# the model group with the semantic cache, so the miss also makes an embedding call (the mock's)
# and searches and fills the index.
UNIQUE = {"unique": REQUEST, "routed": {**REQUEST, "model": "gpt-routed"},
          "semantic-miss": {**REQUEST, "model": "gpt-semantic"}}

# The semantic hit: a paraphrase of a stored prompt (SEMANTIC_STORED). Each request's text carries
# its counter in trailing whitespace (spaces and tabs as binary digits): a new exact key every
# time, so neither the exact cache nor single-flight answers it, and the same words, so the
# embedding and the guard see the same paraphrase. Every request: exact miss, embedding, index
# search, hit served from the index.
SEMANTIC_STORED = "Say hello to the benchmark."
SEMANTIC_PARAPHRASE = "Please say hello to this benchmark"


def wrk(url: str, connections: int, duration: int, tmp: Path, kind: str = "plain") -> dict:
    script = tmp / f"post-{kind}.lua"
    if kind == "semantic-hit":
        body = {**REQUEST, "model": "gpt-semantic", "temperature": 0,
                "messages": [{"role": "user", "content": SEMANTIC_PARAPHRASE + "\u0001"}]}
        prefix, suffix = json.dumps(body).split("\\u0001")
        lua_body = (f"local threads = 0\n"
                    f"setup = function(thread)\n  threads = threads + 1\n  thread:set('tid', threads)\nend\n"
                    f"request = function()\n  counter = (counter or 0) + 1\n"
                    f"  local n, pad = counter * 8 + tid, ''\n"
                    f"  while n > 0 do\n    pad = pad .. ((n % 2 == 1) and ' ' or '\\\\t')\n    n = math.floor(n / 2)\n  end\n"
                    f"  return wrk.format(nil, nil, nil, {json.dumps(prefix)} .. pad .. {json.dumps(suffix)})\nend\n")
    elif kind in UNIQUE:
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


def envoy_counts(admin: str) -> tuple[int, int]:
    """(messages Envoy sent to the processor, requests completed) on the listener, so far."""
    body = http("GET", f"{admin}/stats?filter=^http\\.edge\\.(ext_proc\\.stream_msgs_sent|downstream_rq_completed)$&format=json")[2]
    stats = {s["name"]: int(s["value"]) for s in json.loads(body).get("stats", [])}
    return stats.get("http.edge.ext_proc.stream_msgs_sent", 0), stats.get("http.edge.downstream_rq_completed", 0)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    url: str
    admin: str  # Envoy's admin, for the request and message counts
    envoy: Callable[[], list[int]]  # the edge Envoy's process, for its CPU time
    pids: Callable[[], list[int]] = list  # the processor's processes (none: bare Envoy)


def measure(target: Target, connections: int, duration: int, tmp: Path, kind: str) -> dict:
    """One wrk run, and per request counted meanwhile: the ext_proc messages Envoy's listener
    filter sent, the processor's CPU time and the edge Envoy's."""
    pids, envoy = target.pids(), target.envoy()
    before, cpu, envoy_cpu = envoy_counts(target.admin), cpu_seconds(pids), cpu_seconds(envoy)
    result = wrk(target.url, connections, duration, tmp, kind)
    after, cpu, envoy_cpu = envoy_counts(target.admin), cpu_seconds(pids) - cpu, cpu_seconds(envoy) - envoy_cpu
    requests = max(1, after[1] - before[1])
    return {**result, "msgs": (after[0] - before[0]) / requests, "cpu_us": cpu / requests * 1e6,
            "envoy_us": envoy_cpu / requests * 1e6}


def start_floor(edge_bootstrap: dict, tmp: Path, messages: int, procs: list, edge_replies: bool = False) -> Target:
    name = f"floor{messages}{'-edge-replies' if edge_replies else ''}"
    port, admin, sock = free_port(), free_port(), tmp / f"{name}.sock"
    floor = subprocess.Popen([sys.executable, "-m", "tests.bench.floor", f"unix:{sock}", "provider_bench", str(messages),
                              *(["--edge-replies"] if edge_replies else [])])
    procs.append(floor)
    envoy = start_envoy(floor_bootstrap(edge_bootstrap, port, admin, sock, outcomes=edge_replies), tmp, name)
    procs.append(envoy)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/health/ready", timeout=1)[0] == 200, what=f"floor processor ({name})")
    return Target(f"http://127.0.0.1:{port}/v1/chat/completions", f"http://127.0.0.1:{admin}", lambda: [envoy.pid], lambda: [floor.pid])


def envoy_pids(edge) -> list[int]:
    """The Envoy process `edge-ext up` started."""
    out = subprocess.run(["pgrep", "-P", str(edge.proc.pid), "-x", "envoy"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (bounded)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--workers", type=int, default=0, help="processor workers (0 = one per core)")
    parser.add_argument("--cases", default="", help="comma-separated words: run only the cases whose name holds one "
                        "(e.g. 'pass,floor'); the bare cases always run, as every ratio's base")
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
        provider["models"] = ["gpt-4o-mini", "gpt-routed", "gpt-semantic"]
        # The semantic cache's embeddings come from the mock provider (a Python server: its
        # latency is part of the semantic cases).
        embedder = start_mock("bench-embeddings")
        procs.append(embedder.proc)
        embeddings = {"name": "bench-emb", "kind": "openai", "base_url": embedder.url, "models": ["unused"]}
        semantic = {"enabled": True, "models": {"gpt-semantic": {}}, "keys": "*", "embedding": {"provider": "bench-emb"}}
        config = edge_config(tmp, [provider, streamer, second, embeddings], processor={"workers": args.workers or "auto"},
                             envoy={"access_log": False}, routing={"models": {"gpt-routed": "round_robin"}},
                             cache={"semantic": semantic})
        config["envoy"]["admin"] = {"host": "127.0.0.1", "port": free_port()}
        config["envoy"]["access_log"] = False
        edge = start_edge(tmp / "edge", config, env={"BENCH_PROVIDER_KEY": "sk-bench-provider"})
        procs.append(edge.proc)
        edge_bootstrap = render(parse_config(json.dumps(config)))
        bare_admin = free_port()
        bare_envoy = start_envoy(bare_bootstrap(edge_bootstrap, bare_port, bare_admin, "provider_bench"), tmp, "bare")
        procs.append(bare_envoy)
        wait_until(lambda: http("GET", f"http://127.0.0.1:{bare_port}/health/live", timeout=1)[0] == 200, what="bare envoy")
        bare_t = Target(f"http://127.0.0.1:{bare_port}/v1/chat/completions", f"http://127.0.0.1:{bare_admin}", lambda: [bare_envoy.pid])
        bare_sse_t = Target(f"http://127.0.0.1:{bare_port}/sse/v1/chat/completions", f"http://127.0.0.1:{bare_admin}",
                            lambda: [bare_envoy.pid])
        floor2_t, floor4_t = start_floor(edge_bootstrap, tmp, 2, procs), start_floor(edge_bootstrap, tmp, 4, procs)
        replay_t = start_floor(edge_bootstrap, tmp, 2, procs, edge_replies=True)
        edge_t = Target(f"{edge.url}/v1/chat/completions", f"http://127.0.0.1:{config['envoy']['admin']['port']}",
                        lambda: envoy_pids(edge), lambda: worker_pids(edge))
        for target in (bare_t, floor2_t, floor4_t, replay_t, edge_t):  # warm-up, and a sanity check that all answer 200
            status, _, body = http("POST", target.url, json.dumps(REQUEST).encode(), {"content-type": "application/json"})
            assert status == 200, (target.url, status, body)
            wrk(target.url, args.connections, 2, tmp)
        prime_semantic(edge_t.url)

        c = args.connections
        cases = (("bare", bare_t, c, "plain"), ("floor 2msg", floor2_t, c, "plain"), ("floor 4msg", floor4_t, c, "plain"),
                 ("floor 2msg edge replies", replay_t, c, "plain"),
                 ("edge-ext pass", edge_t, c, "plain"), ("edge-ext miss+store", edge_t, c, "unique"),
                 ("edge-ext hit", edge_t, c, "hit"), ("edge-ext miss+routing", edge_t, c, "routed"),
                 ("edge-ext semantic hit", edge_t, c, "semantic-hit"), ("edge-ext semantic miss", edge_t, c, "semantic-miss"),
                 ("bare stream", bare_sse_t, c, "stream"), ("edge-ext stream", edge_t, c, "stream"),
                 ("bare 1conn", bare_t, 1, "plain"), ("floor 2msg 1conn", floor2_t, 1, "plain"),
                 ("floor 4msg 1conn", floor4_t, 1, "plain"), ("floor 2msg edge replies 1conn", replay_t, 1, "plain"),
                 ("edge-ext pass 1conn", edge_t, 1, "plain"),
                 ("edge-ext miss+store 1conn", edge_t, 1, "unique"), ("edge-ext miss+routing 1conn", edge_t, 1, "routed"),
                 ("edge-ext hit 1conn", edge_t, 1, "hit"), ("edge-ext semantic hit 1conn", edge_t, 1, "semantic-hit"),
                 ("edge-ext semantic miss 1conn", edge_t, 1, "semantic-miss"))
        results: dict[str, list[dict]] = {}
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        cases = tuple(c for c in cases if not wanted or c[0].startswith("bare") or any(w in c[0] for w in wanted))
        for _ in range(args.rounds):
            for name, target, conns, kind in cases:
                results.setdefault(name, []).append(measure(target, conns, args.duration, tmp, kind))
        report(results, args)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def prime_semantic(url: str) -> None:
    """Stores SEMANTIC_STORED in every worker's index (each has its own): whitespace variants are
    new exact keys, sent until paraphrases are semantic hits wherever they land."""
    def send(text: str) -> dict:
        body = {**REQUEST, "model": "gpt-semantic", "temperature": 0, "messages": [{"role": "user", "content": text}]}
        status, headers, answer = http("POST", url, json.dumps(body).encode(),
                                       {"content-type": "application/json", "authorization": "Bearer sk-bench-client"})
        assert status == 200, (status, answer)
        return {k.lower(): v for k, v in headers.items()}

    for i in range(1, 41):
        send(SEMANTIC_STORED + " " * i)
        if i >= 8 and all(send(SEMANTIC_PARAPHRASE + "\t" * (i * 10 + j)).get("x-edge-cache") == "hit-semantic" for j in range(8)):
            return
    raise AssertionError("the paraphrase is not a semantic hit on every worker")


# The ratios issue 13's targets are stated in (docs/performance.md): name, numerator, denominator, field.
RATIOS = (
    ("floor 2msg / bare (req/s)", "floor 2msg", "bare", "rps"),
    ("floor 4msg / bare (req/s)", "floor 4msg", "bare", "rps"),
    ("pass / floor 2msg (req/s)", "edge-ext pass", "floor 2msg", "rps"),
    # Envoy's share of a pass (the floor replaying edge-ext's replies), then the policy's.
    ("floor edge replies / floor 2msg (req/s)", "floor 2msg edge replies", "floor 2msg", "rps"),
    ("pass / floor edge replies (req/s)", "edge-ext pass", "floor 2msg edge replies", "rps"),
    ("hit / floor 2msg (req/s)", "edge-ext hit", "floor 2msg", "rps"),
    ("semantic hit / hit (req/s)", "edge-ext semantic hit", "edge-ext hit", "rps"),
    ("semantic miss / miss+store (req/s)", "edge-ext semantic miss", "edge-ext miss+store", "rps"),
    ("semantic hit p50 / hit p50, 1 connection", "edge-ext semantic hit 1conn", "edge-ext hit 1conn", "p50_ms"),
    ("miss+store / floor 4msg (req/s)", "edge-ext miss+store", "floor 4msg", "rps"),
    ("stream / bare stream (req/s)", "edge-ext stream", "bare stream", "rps"),
    ("pass p50 / floor 2msg p50, 1 connection", "edge-ext pass 1conn", "floor 2msg 1conn", "p50_ms"),
    ("hit p50 / floor 2msg p50, 1 connection", "edge-ext hit 1conn", "floor 2msg 1conn", "p50_ms"),
    ("floor 2msg p50 / bare p50, 1 connection", "floor 2msg 1conn", "bare 1conn", "p50_ms"),
    ("pass p50 / floor edge replies p50, 1 connection", "edge-ext pass 1conn", "floor 2msg edge replies 1conn", "p50_ms"),
)


def report(results: dict[str, list[dict]], args) -> None:
    fields = ("rps", "p50_ms", "p99_ms", "errors", "msgs", "cpu_us", "envoy_us")
    med = {name: {k: statistics.median(r[k] for r in runs) for k in fields} for name, runs in results.items()}
    print(f"\nedge-ext benchmark: {args.rounds} rounds x {args.duration}s, wrk -c{args.connections}; medians")
    print(f"{'case':<32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'msgs':>6}{'cpu us':>8}{'envoy us':>9}{'/bare':>7}")
    for name, m in med.items():
        base = med["bare 1conn" if "1conn" in name else "bare stream" if "stream" in name else "bare"]
        msgs, cpu = (f"{m['msgs']:.1f}", f"{m['cpu_us']:.0f}") if m["msgs"] else ("-", "-")
        print(f"{name:<32}{m['rps']:>9.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['errors']:>9.0f}{msgs:>6}{cpu:>8}"
              f"{m['envoy_us']:>9.0f}{m['rps'] / base['rps']:>7.2f}")
    print("\nratios (same run):")
    for label, top, bottom, key in RATIOS:
        if top in med and bottom in med:
            print(f"  {label:<48}{med[top][key] / med[bottom][key]:>6.2f}")
    for case in ("pass", "miss+store", "miss+routing", "hit", "semantic hit", "semantic miss"):
        if f"edge-ext {case} 1conn" not in med:
            continue
        added = med[f"edge-ext {case} 1conn"]["p50_ms"] - med["bare 1conn"]["p50_ms"]
        print(f"p50 added by edge-ext ({case}) at 1 connection: {added:.2f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
