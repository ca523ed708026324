"""The one Redis every replica shares: the cache's L2 tier, breakers, budgets and (opt-in) client
keys. A single server (``url``), a Sentinel-managed primary (``sentinel``) or a Redis Cluster
(``cluster``); TLS; credentials from the environment or a file, never from the config text.

The clients are built from this in one place (``edge_ext.redis_clients``, called by wiring).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from edge_ext.config.base import Strict, read_secret

_NAME = r"^[A-Za-z0-9_.-]{1,128}$"


def host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as a pair; ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def _nodes(nodes: tuple[str, ...]) -> tuple[str, ...]:
    for node in nodes:
        host_port(node)
    return nodes


Nodes = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_nodes)]


class Secret(Strict):
    # Where a password comes from: an environment variable or a file (a mounted Secret).
    password_env: str | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Secret":
        if self.password_env and self.password_file:
            raise ValueError("set password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        return read_secret(self.password_env, self.password_file)

    @property
    def password_source(self) -> str | None:
        return f"${self.password_env}" if self.password_env else self.password_file


class RedisTLS(Strict):
    # The CA that signs the servers' certificates; unset: the system's CAs.
    ca_file: str | None = None
    # A client certificate, for servers that require one (tls-auth-clients).
    cert_file: str | None = None
    key_file: str | None = None
    # Cluster nodes and Sentinel-reported primaries are often addressed by IP: their
    # certificates must name that IP, or this must be false (the CA is still checked).
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> "RedisTLS":
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        return self


class Sentinel(Secret):
    # The monitored primary's name (`sentinel monitor NAME ...`).
    master: Annotated[str, Field(pattern=_NAME)]
    # The sentinels, host:port; the primary's address is asked of them.
    nodes: Nodes
    db: Annotated[int, Field(ge=0, le=15)] = 0
    # password_env / password_file here: the sentinels' own password (sentinel requirepass),
    # when they have one; the primary's is the section's.


class Cluster(Strict):
    # Some of the cluster's nodes, host:port; the client learns the rest from them.
    nodes: Nodes


class RedisConnection(Secret):
    # Exactly one of: url (one server: redis://host:port/db, rediss:// for TLS), sentinel, cluster.
    url: str | None = None
    sentinel: Sentinel | None = None
    cluster: Cluster | None = None
    # An ACL user (not secret); its password from password_env / password_file.
    username: str | None = None
    # TLS settings; with url, rediss:// turns TLS on (system CAs unless tls.ca_file).
    tls: RedisTLS | None = None
    # Connect and command timeout: a slower Redis counts as unavailable and the request takes
    # the degraded path (cache miss, spend kept locally, breakers decided alone).
    timeout_ms: Annotated[int, Field(ge=1, le=5000)] = 100

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be redis://host:port/db or rediss://host:port/db")
        if parts.password or parts.username:
            raise ValueError("credentials do not belong in the config text: set username, and password_env or "
                             "password_file")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment (options are keys of the redis section)")
        db = parts.path.strip("/")
        if db and (not db.isdigit() or int(db) > 15):
            raise ValueError(f"database {db!r} is not a number from 0 to 15")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "RedisConnection":
        kinds = [name for name in ("url", "sentinel", "cluster") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of url, sentinel, cluster" + (f" (found {', '.join(kinds)})" if kinds else ""))
        if self.url and self.tls and urlsplit(self.url).scheme == "redis":
            raise ValueError("tls is set but url is redis://: use rediss:// for TLS")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls is not None or (self.url or "").startswith("rediss://")

    def addresses(self) -> list[tuple[str, int]]:
        """The host:port pairs named here (for network policies and warnings)."""
        if self.url:
            parts = urlsplit(self.url)
            return [(parts.hostname or "", parts.port or 6379)]
        return [host_port(n) for n in (self.sentinel or self.cluster).nodes]  # type: ignore[union-attr]


class Redis(RedisConnection):
    # The cache on a Redis of its own: cache entries want an evicting Redis (maxmemory-policy
    # allkeys-lru), spend counters one that never evicts. Unset: the cache uses this one too.
    cache: RedisConnection | None = None


def credentials(redis: Redis | None) -> list[tuple[Secret, str]]:
    """Every place of the section that may name a password, with its key path."""
    found: list[tuple[Secret, str]] = []
    for conn, what in ((redis, "redis"), (redis and redis.cache, "redis.cache")):
        if conn is not None:
            found.append((conn, what))
            if conn.sentinel is not None:
                found.append((conn.sentinel, f"{what}.sentinel"))
    return found
