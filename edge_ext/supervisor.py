"""Run and watch the edge's processes: processor workers, Envoy, and (demo) mock providers.

A crashed worker is restarted with backoff; if Envoy dies the edge stops with an error so that
the orchestrator restarts the whole thing. SIGTERM/SIGINT drain Envoy first (so in-flight
requests finish), then stop the workers.

A worker is replaced without a gap (a reload): its successor starts beside it, takes over its
socket path once it serves (edge_ext.extproc.server), and only then is the old process told
to stop; it finishes its open streams and exits ("retiring"). Reloads run on the supervisor's
loop, one at a time: SIGHUP asks for one, and so does the admin API (request_reload).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue

from edge_ext import envoy_admin

log = logging.getLogger("edge_ext.supervisor")

POLL_S = 0.2
READY_TIMEOUT_S = 15.0
# A successor starts while its predecessor still works: on a busy machine that takes longer.
REPLACE_TIMEOUT_S = 60.0
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
        self.proc = self.spawn(self.argv)

    def spawn(self, argv: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
        log.info("started %s (pid %d)", self.name, proc.pid)
        return proc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, drain_s: float = 5.0):
        self.children: list[Child] = []
        self.drain_s = drain_s
        self._stop = threading.Event()
        self.envoy_admin: str | None = None
        self.exit_code = 0
        # Replaced processes finishing their open streams, and what to run when each exits.
        self.retiring: list[tuple[subprocess.Popen, Child]] = []
        # What a reload does (set by whoever composes the edge); requests wait in this queue.
        self.on_reload: Callable[[], object] | None = None
        self._reloads: SimpleQueue[Future | None] = SimpleQueue()

    def add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def request_reload(self) -> Future:
        """A reload on the supervisor's loop; the future holds what ``on_reload`` returned."""
        future: Future = Future()
        self._reloads.put(future)
        return future

    def run(self, ready_hook=None) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, lambda *_: self._reloads.put(None))
        started: list[Child] = []
        for child in self.children:
            if child.after_ready:
                self._wait_ready(started)
            child.start()
            started.append(child)
        if ready_hook:
            ready_hook()
        while not self._stop.wait(POLL_S):
            self._reload_if_asked()
            self._watch()
        self.shutdown()
        return self.exit_code

    def _reload_if_asked(self) -> None:
        try:
            future = self._reloads.get_nowait()
        except Empty:
            return
        if self.on_reload is None:
            log.warning("reload asked, but this edge cannot reload")
            result = None
        else:
            try:
                result = self.on_reload()
            except Exception as exc:  # a reload that breaks must not take the edge down
                log.exception("reload failed")
                if future is not None:
                    future.set_exception(exc)
                return
        if future is not None:
            future.set_result(result)

    def replace(self, child: Child, argv: list[str], timeout_s: float = REPLACE_TIMEOUT_S) -> bool:
        """Start ``argv`` as ``child``'s successor; once it says it serves, retire the old process.

        The successor is told where to say so (``--ready-fd``, a pipe): a socket that accepts
        proves nothing while the old process still listens on the same path. False, and the
        old process untouched, when the successor does not get ready in time.
        """
        read_end, write_end = os.pipe()
        try:
            try:
                proc = child.spawn([*argv, "--ready-fd", str(write_end)], pass_fds=(write_end,))
            finally:
                os.close(write_end)
            deadline, ready = time.monotonic() + timeout_s, False
            while not ready and proc.poll() is None and time.monotonic() < deadline:
                ready = bool(select.select([read_end], [], [], POLL_S)[0]) and os.read(read_end, 1) == b"1"
        finally:
            os.close(read_end)
        if not ready:
            log.error("%s: successor (pid %d) did not start serving; the old process keeps serving", child.name, proc.pid)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for hook in child.on_exit:
                hook(proc.pid)
            return False
        old, child.proc, child.argv, child.restarts = child.proc, proc, argv, 0
        if old is not None and old.poll() is None:
            old.send_signal(signal.SIGTERM)  # it drains: open streams finish, then it exits
            self.retiring.append((old, child))
        elif old is not None:
            for hook in child.on_exit:
                hook(old.pid)
        return True

    def _wait_ready(self, children: list[Child]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            if all(c.ready() for c in children):
                return
            time.sleep(0.02)
        log.warning("not every process was ready after %.0fs; starting the rest anyway", READY_TIMEOUT_S)

    def _watch(self) -> None:
        for proc, child in [r for r in self.retiring if r[0].poll() is not None]:
            self.retiring.remove((proc, child))
            log.info("%s: replaced process %d exited with %s", child.name, proc.pid, proc.returncode)
            for hook in child.on_exit:
                hook(proc.pid)
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
        procs = [(c.proc, c.name) for c in order if c.alive()] + [(p, c.name) for p, c in self.retiring]
        for proc, name in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.drain_s + 5)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", name)
                    proc.kill()
                    proc.wait()
        log.info("stopped")


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env
