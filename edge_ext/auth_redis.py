"""Client keys kept in Redis, beside (or instead of) the config file.

Layout: one hash per key, ``{prefix}{sha256}`` with fields ``id``, ``tenant``, ``models``
(comma-separated, empty for all) and ``pii``. Lookups are cached in process (found keys for
``ttl_s``, unknown ones for a few seconds), so Redis is not on the path of every request, and
a revoked key stops working within ``ttl_s``. With Redis unreachable, a key not in that cache
cannot be checked and is refused (503 ``key_store_unavailable``); the failures are counted and
logged by the store's ``StoreHealth`` (edge_ext.health). The cache holds at most ``max_entries`` digests:
clients choose what they send, and a flood of made-up keys must not grow it without end (the
oldest entry goes first; an evicted key costs one more Redis read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from edge_ext.auth import Caller
from edge_ext.errors import KeyStoreUnavailable
from edge_ext.health import StoreHealth

_NEGATIVE_TTL_S = 5.0
MAX_CACHED_KEYS = 10_000


class RedisKeyStore:
    def __init__(self, redis: Any, prefix: str, clock: Callable[[], float], ttl_s: float = 30.0, timeout_s: float = 0.1,
                 health: StoreHealth | None = None, max_entries: int = MAX_CACHED_KEYS):
        self._redis = redis
        self._prefix, self._clock, self._ttl = prefix, clock, ttl_s
        self._timeout = timeout_s
        self._cache: dict[str, tuple[float, Caller | None]] = {}  # in insertion order: oldest first
        self._max_entries = max_entries
        self._health = health or StoreHealth("client_keys", "redis")

    def __len__(self) -> int:
        return len(self._cache)

    def cached(self, digest: str) -> tuple[bool, Caller | None]:
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    async def lookup(self, digest: str) -> Caller | None:
        try:
            fields = await asyncio.wait_for(self._redis.hgetall(self._prefix + digest), self._timeout)
        except Exception as exc:  # connection refused, timeout, protocol error
            self._health.failed(exc)
            # Keys that live only in Redis cannot be verified: refuse, do not guess.
            raise KeyStoreUnavailable("the client key store is unreachable; retry later") from exc
        self._health.ok()
        caller = None
        if fields:
            get = {k.decode(): v.decode() for k, v in fields.items()}.get
            models = frozenset(m for m in (get("models") or "").split(",") if m)
            pii = get("pii") if get("pii") in ("off", "redact", "block") else None
            caller = Caller(get("id") or digest[:12], get("tenant") or "default", models, pii)
        self._cache.pop(digest, None)  # a refreshed entry is the newest
        while len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[digest] = (self._clock() + (self._ttl if caller else _NEGATIVE_TTL_S), caller)
        return caller
