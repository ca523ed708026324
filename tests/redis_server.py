"""A private redis-server for tests that stop or slow Redis (never the machine's shared one)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.support import free_port, wait_until


def require_redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary:
        return binary
    reason = "redis-server not found: Redis-backed tests need it (apt-get install redis-server)"
    if os.environ.get("EDGE_EXT_REQUIRE_REDIS") == "1":
        pytest.fail(reason + " - mandatory in CI")
    print(f"\n!!! SKIPPING REDIS TESTS: {reason} !!!\n")
    pytest.skip(reason)


def connect_to(section: dict):
    """The workers' client (edge_ext.redis_clients) for a `redis` config section."""
    from edge_ext.config.redis import RedisConnection
    from edge_ext.redis_clients import connect

    return connect(RedisConnection.model_validate(section))


class RedisServer:
    def __init__(self):
        self.binary = require_redis_binary()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="edge-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout_ms: int = 100):
        """An asyncio client made as the workers make theirs."""
        return connect_to({"url": self.url, "timeout_ms": timeout_ms})

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        wait_until(self.ping, timeout=10, what="redis up")

    def ping(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def pause(self) -> None:
        """Unreachable but keeping its data: connections time out, as in a network partition."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        time.sleep(0.05)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
