"""Run and watch the edge's processes: processor workers, Envoy, and (demo) mock providers.

A crashed worker is restarted with backoff; if Envoy dies the edge stops with an error so that
the orchestrator restarts the whole thing. SIGTERM/SIGINT drain Envoy first (so in-flight
requests finish), then stop the workers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_ext import envoy_admin

log = logging.getLogger("edge_ext.supervisor")

POLL_S = 0.2
READY_TIMEOUT_S = 15.0
MAX_BACKOFF_S = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    critical: bool = False  # its death stops the edge
    # Started only once every earlier child's ready() is true (bounded by READY_TIMEOUT_S).
    after_ready: bool = False
    ready: Callable[[], bool] = lambda: True
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    on_exit: list = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, drain_s: float = 5.0):
        self.children: list[Child] = []
        self.drain_s = drain_s
        self._stop = threading.Event()
        self.envoy_admin: str | None = None
        self.exit_code = 0

    def add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def run(self, ready_hook=None) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        started: list[Child] = []
        for child in self.children:
            if child.after_ready:
                self._wait_ready(started)
            child.start()
            started.append(child)
        if ready_hook:
            ready_hook()
        while not self._stop.wait(POLL_S):
            self._watch()
        self.shutdown()
        return self.exit_code

    def _wait_ready(self, children: list[Child]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            if all(c.ready() for c in children):
                return
            time.sleep(0.02)
        log.warning("not every process was ready after %.0fs; starting the rest anyway", READY_TIMEOUT_S)

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.next_start:
                    child.start()
                continue
            code = child.proc.poll()
            if code is None:
                continue
            for hook in child.on_exit:
                hook(child.proc.pid)
            if child.critical:
                log.error("%s exited with %s; stopping the edge", child.name, code)
                self.exit_code = 1
                self._stop.set()
                return
            backoff = min(MAX_BACKOFF_S, 0.5 * 2**child.restarts)
            child.restarts += 1
            child.proc, child.next_start = None, now + backoff
            log.warning("%s exited with %s; restarting in %.1fs", child.name, code, backoff)

    def _drain_envoy(self) -> None:
        if not self.envoy_admin:
            return
        try:
            envoy_admin.request(self.envoy_admin, "POST", "/drain_listeners?graceful")
            deadline = time.monotonic() + self.drain_s
            while time.monotonic() < deadline and envoy_admin.stat(self.envoy_admin, "http\\.edge\\.downstream_rq_active") > 0:
                time.sleep(0.1)
        except OSError as exc:
            log.warning("envoy drain skipped: %s", exc)

    def shutdown(self) -> None:
        log.info("stopping: draining envoy, then workers")
        self._drain_envoy()
        # Envoy and front-facing processes first, workers after, so no stream loses its processor.
        order = sorted(self.children, key=lambda c: 0 if c.critical else 1)
        for child in order:
            if child.alive():
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(timeout=self.drain_s + 5)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", child.name)
                    child.proc.kill()
                    child.proc.wait()
        log.info("stopped")


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env
