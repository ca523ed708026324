"""Redis clients from the config's ``redis`` section: one server, a Sentinel-managed primary or
a Redis Cluster, with TLS and a password read from the environment or a file.

Only ``edge_ext.wiring`` calls ``connect``; the stores take the client it returns and speak
plain commands and scripts, the same on every kind (each script's keys share a hash tag, so
they live in one cluster slot).

Retries: one, at once. A command that fails on a connection the server closed (a primary that
died, a failover that moved it) is sent again on a new connection, which asks the sentinels or
the cluster where the primary is now. Longer retries would hold a request past Envoy's message
deadline: every caller has a degraded path for a Redis that does not answer in time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisClusterException, RedisError

from edge_ext.config.models import Config
from edge_ext.config.redis import RedisConnection, Secret, credentials, host_port
from edge_ext.errors import ConfigError

log = logging.getLogger("edge_ext.redis")

# What a Redis that is down, failing over or unreachable raises: every store's degraded path
# catches these. Cluster topology errors are not RedisErrors; and under uvloop a command sent on
# a connection another task has just closed (the cluster client closes a failed node's
# connections) raises RuntimeError from the transport.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError, RuntimeError)

# A Redis Cluster client starts a refresh of its slot map at most this often (_cluster_class).
MIN_REFRESH_INTERVAL_S = 0.25


class ClientService:
    """A client as a worker service: connected (a cluster's slot map read) before the worker
    serves, so that its first requests do not wait for it; closed when the worker stops, after
    the stores that use it."""

    def __init__(self, client: Any, what: str = "redis", start_timeout_s: float = 2.0):
        self.client, self.what, self.start_timeout_s = client, what, start_timeout_s

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await self.client.ping()
        except UNAVAILABLE as exc:
            log.warning("%s: not reachable at start (%s: %s); the shared stores take their degraded paths until it is",
                        self.what, type(exc).__name__, exc)

    async def aclose(self) -> None:
        await self.client.aclose()


def check_credentials(config: Config) -> None:
    """Refuse to start (ConfigError naming the source) when a Redis password cannot be read."""
    for conn, what in credentials(config.redis):
        _password(conn, what)


def _password(conn: Secret, what: str) -> str | None:
    source = conn.password_source
    if source is None:
        return None
    password = conn.password()
    if password is None:
        # Connecting without it would only trade this line for NOAUTH on every command.
        raise ConfigError(f"{what}: no password in {source}")
    return password


def _tls(conn: RedisConnection) -> dict[str, Any]:
    if not conn.uses_tls:
        return {}
    tls = conn.tls
    return {"ssl": True, "ssl_cert_reqs": "required",
            "ssl_ca_certs": tls.ca_file if tls else None,
            "ssl_certfile": tls.cert_file if tls else None,
            "ssl_keyfile": tls.key_file if tls else None,
            "ssl_check_hostname": tls.check_hostname if tls else True}


def connect(conn: RedisConnection, what: str = "redis") -> Any:
    """An asyncio client for ``conn`` (``what`` names the section in errors). No connection is
    made until the first command."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import NoBackoff

    timeout = conn.timeout_ms / 1000
    common: dict[str, Any] = {
        "socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1),
        "username": conn.username, "password": _password(conn, what), **_tls(conn),
    }
    if conn.cluster is not None:
        nodes = [ClusterNode(*host_port(node)) for node in conn.cluster.nodes]
        # Slots whose primary is failing over fail alone; the others keep answering. No retry:
        # a failed command refreshes the slot map for the next one, and the retry of a cluster
        # that is down waits 0.25 s first.
        return _cluster_class()(startup_nodes=nodes, require_full_coverage=False, **{**common, "retry": Retry(NoBackoff(), 0)})
    if conn.sentinel is not None:
        s = conn.sentinel
        sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1),
                           "password": _password(s, f"{what}.sentinel"), **_tls(conn)}
        manager = Sentinel([host_port(node) for node in s.nodes], sentinel_kwargs=sentinel_kwargs, **common)
        return manager.master_for(s.master, db=s.db)
    parts = urlsplit(conn.url or "")
    return Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=int(parts.path.strip("/") or 0), **common)


def _cluster_class() -> type:
    """RedisCluster whose topology refresh after a failover is quick, rare and outlives its caller.

    redis-py refreshes the slot map after any connection error, and each refresh also reloads
    the command table (COMMAND: measured 40 ms of the event loop with redis-py's own parser, 6
    with hiredis, on an idle machine; ten times that on a busy one): it is read once. Callers
    bound their commands (a cache read by its budget, breaker sharing by 50 ms): a refresh
    cancelled with them would start over for the next command, and could never finish. And a
    refresh starts at most once every MIN_REFRESH_INTERVAL_S.
    """
    from redis._parsers import AsyncCommandsParser
    from redis.asyncio.cluster import RedisCluster

    class KnownCommands(AsyncCommandsParser):
        async def initialize(self, node: Any = None) -> None:
            if self.commands and node is not None:
                self.node = node  # the command table does not change with the topology
                return
            await super().initialize(node)

    class Cluster(RedisCluster):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.commands_parser = KnownCommands()
            self._refreshed_at = float("-inf")
            # RedisCluster picks its connection class itself (plain or TLS); nodes found later
            # are built from the manager's kwargs, the startup nodes already exist.
            manager = self.nodes_manager
            guarded = _closed_is_unavailable(manager.connection_kwargs["connection_class"])
            manager.connection_kwargs["connection_class"] = guarded
            for node in manager.startup_nodes.values():
                node.connection_class = guarded

        async def initialize(self, *args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            if self._initialize and self.nodes_manager.slots_cache and loop.time() - self._refreshed_at < MIN_REFRESH_INTERVAL_S:
                # A refresh is due after every failed command, and costs the event loop about
                # 10 ms (16,384 slots re-mapped; ten times that on a busy machine). While a dead
                # primary waits for its replica's promotion every command to its slots fails:
                # they fail on the last map instead, and fast, until the interval has passed.
                self._initialize = False
                return self
            self._refreshed_at = loop.time()
            refresh = loop.create_task(super().initialize(*args, **kwargs))
            refresh.add_done_callback(_retrieved)
            return await asyncio.shield(refresh)

    return Cluster


def _retrieved(task: asyncio.Task) -> None:
    """A shielded refresh whose callers all left: its failure was already theirs to see (the
    command that needed it failed), so it is not reported again as never retrieved."""
    if not task.cancelled():
        task.exception()


def _closed_is_unavailable(base: type) -> type:
    """``base`` whose write on a connection another task has just closed raises ConnectionError.

    The cluster client closes every connection of a node that failed; a command already holding
    one of them then writes to ``None`` and redis-py raises AttributeError, which no degraded
    path catches (UNAVAILABLE keeps AttributeError out: it would hide our own bugs).
    """
    from redis.exceptions import ConnectionError as RedisConnectionError

    class ClosedIsUnavailable(base):  # type: ignore[misc, valid-type]
        async def _send_packed_command(self, command: Any) -> None:
            if self._writer is None:
                raise RedisConnectionError(f"{self.host}:{self.port}: connection closed by another task")
            await super()._send_packed_command(command)

    return ClosedIsUnavailable
