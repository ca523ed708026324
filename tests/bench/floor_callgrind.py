"""Instructions per request of the floor's processor (and optionally its Envoy), per variant of
tests/bench/floor_variants.py, counted by valgrind's callgrind: user-space instructions do not
depend on the machine's load, unlike CPU time.

    python -m tests.bench.floor_callgrind [--seconds 8] [--connections 4] [--envoy] [--only NAME,...]

Each variant runs alone under callgrind: a warm-up, the counters zeroed (callgrind_control -z),
a bounded wrk run, the counters dumped (-d); instructions over the requests Envoy completed.
Kernel time (syscalls, the socket itself) is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_ext.config import parse_config
from edge_ext.edge import envoy_binary
from edge_ext.envoy_config.render import render
from tests.bench.envoys import floor_bootstrap, start_envoy, upstream_bootstrap
from tests.bench.floor_variants import VARIANTS
from tests.bench.run import envoy_counts, wrk
from tests.support import edge_config, free_port, http, stop, wait_until

import yaml


def callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no", "--collect-jumps=no"]


def instructions(pid: int, out: Path, poke: str | None) -> int:
    """Dumps the counters. An idle process under valgrind may not take the command for a long
    time: a light poke (an admin GET every 0.1 s, counted too) keeps it running meanwhile."""
    done = threading.Event()

    def keep_busy() -> None:
        while not done.wait(0.1):
            with contextlib.suppress(OSError):
                http("GET", poke, timeout=5)

    if poke:
        threading.Thread(target=keep_busy, daemon=True).start()
    try:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=300)
    finally:
        done.set()
    deadline = time.monotonic() + 300  # the dump is written after the command returns
    while time.monotonic() < deadline:
        totals = [re.search(r"^totals:\s+(\d+)", path.read_text(errors="replace"), re.M) for path in out.parent.glob(out.name + ".*")]
        if totals and all(totals):
            break
        time.sleep(1)
    for path in out.parent.glob(out.name + ".*"):
        path.unlink()
    return sum(int(t.group(1)) for t in totals if t)


def run_variant(variant, edge_bootstrap: dict, tmp: Path, args) -> dict:
    sock, port, admin = tmp / "v.sock", free_port(), free_port()
    proc_out, envoy_out = tmp / "proc.cg", tmp / "envoy.cg"
    command = [sys.executable, "-m", variant.module, f"unix:{sock}", "provider_bench", "2", *variant.args]
    processor = subprocess.Popen([*([] if args.envoy else callgrind(proc_out)), *command], env={**os.environ, **variant.env},
                                 stdout=subprocess.DEVNULL, stderr=open(tmp / "processor.log", "wb"))
    bootstrap = floor_bootstrap(copy.deepcopy(edge_bootstrap), port, admin, sock)
    if variant.envoy:
        variant.envoy(bootstrap, sock)
    if args.envoy:
        path = tmp / "v.yaml"
        path.write_text(yaml.safe_dump(bootstrap))
        envoy = subprocess.Popen([*callgrind(envoy_out), envoy_binary(), "-c", str(path), "--disable-hot-restart", "-l", "error",
                                  "--concurrency", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        envoy = start_envoy(bootstrap, tmp, "v")
    url, admin_url = f"http://127.0.0.1:{port}/v1/chat/completions", f"http://127.0.0.1:{admin}"
    try:
        wait_until(lambda: http("POST", url, b"{}", {"content-type": "application/json"}, timeout=5)[0] == 200,
                   timeout=600, what=variant.name)
        wrk(url, args.connections, 3, tmp)
        target = envoy if args.envoy else processor
        out = envoy_out if args.envoy else proc_out
        subprocess.run(["callgrind_control", "-z", str(target.pid)], capture_output=True, timeout=120)
        time.sleep(0.5)
        before = envoy_counts(admin_url)
        result = wrk(url, args.connections, args.seconds, tmp)
        after = envoy_counts(admin_url)
        count = instructions(target.pid, out, f"{admin_url}/ready" if args.envoy else None)
        requests = max(1, after[1] - before[1])
        return {"requests": requests, "k_instr": count / requests / 1000, "msgs": (after[0] - before[0]) / requests,
                "errors": result["errors"]}
    finally:
        stop(processor)
        stop(envoy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--envoy", action="store_true", help="count Envoy's instructions (one worker) instead of the processor's")
    parser.add_argument("--only", default="")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    variants = [v for v in VARIANTS if v.name == "default" or not wanted or any(w in v.name for w in wanted)]
    tmp = Path(tempfile.mkdtemp(prefix="edge-floor-cg-"))
    upstream = None
    try:
        up_port = free_port()
        upstream = start_envoy(upstream_bootstrap(up_port, free_port()), tmp, "upstream")
        provider = {"name": "bench", "kind": "openai", "base_url": f"http://127.0.0.1:{up_port}",
                    "api_key_env": "BENCH_PROVIDER_KEY", "models": ["gpt-4o-mini"]}
        config = edge_config(tmp, [provider], envoy={"access_log": False, "admin": {"host": "127.0.0.1", "port": free_port()}})
        edge_bootstrap = render(parse_config(json.dumps(config)))
        print(f"instructions per request ({'Envoy' if args.envoy else 'processor'}), K; wrk -c{args.connections} {args.seconds}s")
        for _ in range(args.rounds):
            for variant in variants:
                r = run_variant(variant, edge_bootstrap, tmp, args)
                print(f"{variant.name:<48}{r['k_instr']:>8.0f} K  ({r['requests']} requests, {r['msgs']:.1f} msgs, "
                      f"{r['errors']} non-2xx)", flush=True)
    finally:
        if upstream:
            stop(upstream)
        print("logs:", tmp) if args.keep else shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
