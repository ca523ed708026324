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

from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisClusterException, RedisError

from edge_ext.config.models import Config
from edge_ext.config.redis import RedisConnection, Secret, credentials, host_port
from edge_ext.errors import ConfigError

# What a Redis that is down, failing over or unreachable raises: every store's degraded path
# catches these (cluster topology errors are not RedisErrors).
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)


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
    from redis.asyncio.cluster import ClusterNode, RedisCluster
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
        # Slots whose primary is failing over fail alone; the others keep answering.
        return RedisCluster(startup_nodes=nodes, require_full_coverage=False, **common)
    if conn.sentinel is not None:
        s = conn.sentinel
        sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1),
                           "password": _password(s, f"{what}.sentinel"), **_tls(conn)}
        manager = Sentinel([host_port(node) for node in s.nodes], sentinel_kwargs=sentinel_kwargs, **common)
        return manager.master_for(s.master, db=s.db)
    parts = urlsplit(conn.url or "")
    return Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=int(parts.path.strip("/") or 0), **common)
