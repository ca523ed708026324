"""Where spend is counted: shared by the workers of an instance (disk) or by replicas (Redis).

Amounts are kept as integer micro-dollars so increments are atomic integer operations in both
stores (diskcache ``incr`` in one SQLite transaction, Redis ``INCRBY``); costs are quantized to
1e-9 USD, so rounding each charge up to the next micro-dollar never under-counts.

With Redis unreachable, spend is kept locally and written when Redis is back (``flush``), and
the check uses the last known Redis figure plus what is pending here: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import ROUND_CEILING, Decimal

log = logging.getLogger("edge_ext.budget")
_MICRO = Decimal("0.000001")


def to_micros(usd: Decimal) -> int:
    return int((usd / _MICRO).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) * _MICRO


class LedgerUnavailable(Exception):
    pass


class DiskLedger:
    def __init__(self, directory: str):
        import diskcache

        from edge_ext.cache.disk import PlainDisk

        # Integers only, never unpickled (see PlainDisk).
        self._cache = diskcache.Cache(directory, disk=PlainDisk)

    async def count(self, key: str) -> int:
        return int(self._cache.get(f"count:{key}", 0))

    async def incr(self, key: str, n: int, ttl_s: float) -> int:
        return int(await asyncio.to_thread(self._incr, f"count:{key}", n, ttl_s))

    def _incr(self, key: str, n: int, ttl_s: float) -> int:
        with self._cache.transact():
            total = int(self._cache.get(key, 0)) + n
            self._cache.set(key, total, expire=ttl_s)
            return total

    async def spent(self, scope_id: str, period_key: str) -> Decimal:
        return from_micros(int(self._cache.get(f"spend:{scope_id}:{period_key}", 0)))

    async def add(self, scope_id: str, period_key: str, usd: Decimal) -> Decimal:
        total = await asyncio.to_thread(self._cache.incr, f"spend:{scope_id}:{period_key}", to_micros(usd), 0)
        return from_micros(int(total))


class RedisLedger:
    """Replicas share spend through Redis; a Redis outage loses nothing and fails as configured."""

    def __init__(self, url: str, fallback: DiskLedger, fail_open: bool, timeout_s: float = 0.1, prefix: str = "edge-ext:spend:"):
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._fallback, self.fail_open, self._prefix = fallback, fail_open, prefix
        self._pending: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], int] = {}

    async def spent(self, scope_id: str, period_key: str) -> Decimal:
        key = (scope_id, period_key)
        try:
            await self.flush()
            value = await self._redis.get(self._prefix + f"{scope_id}:{period_key}")
            self._last[key] = int(value or 0)
        except Exception as exc:
            if not self.fail_open:
                raise LedgerUnavailable(str(exc)) from exc
            log.warning("budget store unreachable (%s); checking against the last known spend", type(exc).__name__)
        return from_micros(self._last.get(key, 0) + self._pending.get(key, 0))

    async def add(self, scope_id: str, period_key: str, usd: Decimal) -> Decimal:
        key, micros = (scope_id, period_key), to_micros(usd)
        try:
            await self.flush()
            total = await self._redis.incrby(self._prefix + f"{scope_id}:{period_key}", micros)
            self._last[key] = int(total)
            return from_micros(int(total))
        except Exception:
            # Kept and written when Redis returns: spend is never dropped.
            self._pending[key] = self._pending.get(key, 0) + micros
            return from_micros(self._last.get(key, 0) + self._pending[key])

    async def count(self, key: str) -> int:
        try:
            return int(await self._redis.get(self._prefix + "count:" + key) or 0)
        except Exception as exc:
            if not self.fail_open:
                raise LedgerUnavailable(str(exc)) from exc
            return await self._fallback.count(key)

    async def incr(self, key: str, n: int, ttl_s: float) -> int:
        try:
            pipe = self._redis.pipeline()
            pipe.incrby(self._prefix + "count:" + key, n)
            pipe.expire(self._prefix + "count:" + key, int(ttl_s))
            total, _ = await pipe.execute()
            return int(total)
        except Exception:
            return await self._fallback.incr(key, n, ttl_s)

    async def flush(self) -> None:
        for key in list(self._pending):
            micros = self._pending[key]
            total = await self._redis.incrby(self._prefix + f"{key[0]}:{key[1]}", micros)
            self._last[key] = int(total)
            if self._pending.get(key) == micros:
                del self._pending[key]
            else:
                self._pending[key] -= micros
