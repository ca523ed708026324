"""Helpers shared by the e2e tests and the benchmark: free ports, real processes, readiness."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    return free_ports(1)[0]


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(n: int) -> list[int]:
    """n distinct free ports, each bound until all are chosen. Drawn at random below the
    kernel's ephemeral range: a port the kernel hands out for bind(0) is also the source port of
    any outgoing connection, and one did become a client's before an edge under test could bind
    it ("metrics.port is already in use", four kill tests running side by side)."""
    top = _ephemeral_start()
    chosen: list[socket.socket] = []
    try:
        while len(chosen) < n:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(max(1024, top - 12_000), top)))
            except OSError:
                s.close()
                continue
            chosen.append(s)
        return [s.getsockname()[1] for s in chosen]
    finally:
        for s in chosen:
            s.close()


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, headers, body) of one request; errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def wait_until(check, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached in {timeout}s (last error: {last})")


def scrape(edge: "Edge") -> str:
    status, _, payload = http("GET", f"http://127.0.0.1:{edge.metrics_port}/metrics")
    assert status == 200, payload
    return payload.decode()


def scrape_until(edge: "Edge", *lines: str, timeout: float = 10.0) -> str:
    """The metrics text once it holds every line. Workers write their values every
    metrics.flush_interval_s (1 s), so a request's samples show up within that of its stream's end."""
    last = [""]

    def holds() -> bool:
        last[0] = scrape(edge)
        return all(line in last[0] for line in lines)

    try:
        wait_until(holds, timeout=timeout, what="metrics lines")
    except TimeoutError:
        raise AssertionError(f"not in the metrics after {timeout}s: {[line for line in lines if line not in last[0]]}") from None
    return last[0]


def worker_pids(edge: "Edge") -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(edge.proc.pid), "-f", "edge_ext.worker"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def stop(proc: subprocess.Popen, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


@dataclass
class MockProvider:
    name: str
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        return json.loads(http("GET", f"{self.url}/_mock/requests")[2])

    def clear(self) -> None:
        http("DELETE", f"{self.url}/_mock/requests")
        http("DELETE", f"{self.url}/_mock/faults")
        http("DELETE", f"{self.url}/_mock/ratelimits")

    def rate_limits(self, **spec) -> dict:
        """Rate-limit headers on its answers from this budget (edge_ext.mock.ratelimits)."""
        status, _, body = http("POST", f"{self.url}/_mock/ratelimits", json.dumps(spec).encode(),
                               {"content-type": "application/json"})
        assert status < 300, body
        return json.loads(body)

    def faults(self, **spec) -> None:
        status, _, body = http("POST", f"{self.url}/_mock/faults", json.dumps(spec).encode(), {"content-type": "application/json"})
        assert status < 300, body


def start_mock(name: str, *args: str) -> MockProvider:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge_ext.mock", "--port", str(port), "--name", name, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mock = MockProvider(name, port, proc)
    wait_until(lambda: http("GET", f"{mock.url}/_mock/health", timeout=1)[0] == 200, what=f"mock {name} up")
    return mock


@dataclass
class Edge:
    config_path: Path
    port: int
    admin_port: int | None  # None: Envoy's admin is on its Unix socket in the state directory
    metrics_port: int
    proc: subprocess.Popen
    log_path: Path
    socket_dir: Path | None  # None: the instance's default directory
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin_client(self, index: int = 0):
        """The admin API of worker ``index``, with the instance's token."""
        from edge_ext.admin.client import AdminClient
        from edge_ext.config import load_config

        return AdminClient(load_config(self.config_path), index)

    def envoy_stat(self, name: str) -> int:
        body = http("GET", f"{self.admin}/stats?filter=^{name}$&format=json")[2]
        stats = json.loads(body).get("stats", [])
        return int(stats[0]["value"]) if stats else 0


def edge_config(tmp: Path, providers: list[dict], **sections) -> dict:
    port, admin, metrics = free_port(), free_port(), free_port()
    socket_dir = tmp / "sockets"
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "providers": providers,
        "processor": {"address": f"unix:{socket_dir}", "workers": 2, **sections.pop("processor", {})},
        "metrics": {"host": "127.0.0.1", "port": metrics},
        "envoy": {"admin": {"host": "127.0.0.1", "port": admin}},
        **sections,
    }
    return config


def start_edge(tmp: Path, config: dict, env: dict | None = None, wait_ready: bool = True) -> Edge:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp / "edge.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge_ext.cli", "up", "--config", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    edge = Edge(path, config["listen"]["port"], config.get("envoy", {}).get("admin", {}).get("port"), config["metrics"]["port"], proc,
                log_path, Path(config["processor"]["address"][5:]) if "address" in config.get("processor", {}) else None)
    if wait_ready:
        try:
            # An edge that refused to start (a port taken, a bad config) has exited: no 30 s wait.
            wait_until(lambda: proc.poll() is not None or http("GET", f"{edge.url}/health/ready", timeout=1)[0] == 200,
                       timeout=30, what="edge ready")
        except TimeoutError:
            pass
        if proc.poll() is not None or http("GET", f"{edge.url}/health/ready", timeout=1)[0] != 200:
            stop(proc)
            raise AssertionError("edge did not become ready:\n" + edge.log()) from None
    return edge


def refused_as_unavailable(edge, mocks, messages) -> int:
    """A chat request when no provider may serve it: a 503 ``provider_unavailable`` that calls no
    provider. Returns its ``retry-after`` in seconds."""
    import openai
    import pytest

    calls = sum(len(m.requests()) for m in mocks)
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=messages)
    assert info.value.status_code == 503
    assert info.value.body["code"] == "provider_unavailable"
    assert sum(len(m.requests()) for m in mocks) == calls
    return int(info.value.response.headers["retry-after"])
