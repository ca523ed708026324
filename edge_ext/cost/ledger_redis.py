"""Replicas share spend, holds and token windows through Redis, and ride out its outages.

Each admission and each settlement is one Lua script, so it is atomic across replicas. Per
subject and period (the spend key ``{prefix}{SCOPE:ID:PERIOD}``, e.g.
``edge-ext:spend:{key:alice:2026-11-27}``, plus ``held:``, ``holds:`` and ``estimated:`` keys of
the same suffix): spend and estimated spend are integer micro-dollars; a
hold is a member ``{id}:{micros}`` of a sorted set scored by its expiry, and ``held`` is their
sum, so an admission reads two integers (expired holds are swept first). The keys of one subject
and period are used together by one script: their ``{scope}:{period}`` hash tag keeps them in
one Redis Cluster slot (hash tags were added with Cluster support: spend an earlier version
kept under untagged names is not read). Every other script touches one key.

With Redis unreachable: failing closed refuses (LedgerUnavailable); failing open admits against
the last known figures plus what this replica spent and holds meanwhile, keeps its spend and
writes it when Redis is back (``flush``). A hold admitted during the outage lives only here: its
settlement is plain spend (a due one expiring unsettled is charged as estimated, as in Redis),
written once under the hold's id however often it is sent (a write whose reply was lost is sent
again); and the hold the admission's script may have left in Redis before its reply was cut short
is released. A settlement of a hold that is in Redis but could not reach it is queued and replayed
through the same script, so the hold is removed and charged once, never again at its expiry.

What a replica keeps for Redis lives in the worker's memory, not on disk: a worker that stops
while Redis is still away tries 3 more times, 0.3 s apart, then logs each amount it could not
write (an error line per budget period, for the operator to add by hand); one that crashes loses
it. A durable journal would have to be shared by the instance's workers, and be read before each
admission; outages are expected to be short and rare next to worker stops, so the memory, the
final attempts and the loud line are the trade.
Every failure to reach Redis is counted and logged through the ledger's ``StoreHealth``
(edge_ext.health).
"""

from __future__ import annotations

import asyncio
import logging
import math
from decimal import Decimal
from typing import Any

from edge_ext.cost.ledger_api import Hold, LedgerUnavailable, Totals, from_micros, to_micros
from edge_ext.cost.ledger_scripts import ADJUST, CHARGE_ONCE, RESERVE, SETTLE, TAKE, TOTALS, WRITTEN_TTL_S
from edge_ext.health import StoreHealth

log = logging.getLogger("edge_ext.budget")

# How often kept spend is written back when no request comes to write it first.
FLUSH_INTERVAL_S = 1.0
# A stopping worker's last tries at writing what it kept (each bounded by the client's timeouts).
FINAL_ATTEMPTS, FINAL_RETRY_S = 4, 0.3


def _member(hold: Hold) -> str:
    return f"{hold.id}:{hold.micros}:due" if hold.due else f"{hold.id}:{hold.micros}"


class RedisLedger:
    def __init__(self, redis: Any, fallback: Any, fail_open: bool, timeout_s: float = 0.1, prefix: str = "edge-ext:spend:",
                 health: StoreHealth | None = None):
        from edge_ext.redis_clients import UNAVAILABLE

        # Any client from edge_ext.redis_clients. An admission waits at most timeout_s for Redis,
        # whatever the client does meanwhile (a cluster that is down makes it sleep first); a
        # later answer counts as none, like the client's own socket timeouts.
        self._redis, self._timeout = redis, timeout_s
        self._down = UNAVAILABLE
        self._fallback, self.fail_open, self._prefix = fallback, fail_open, prefix
        self._scripts = {name: self._redis.register_script(text) for name, text in
                         (("totals", TOTALS), ("reserve", RESERVE), ("settle", SETTLE), ("take", TAKE), ("adjust", ADJUST),
                          ("charge_once", CHARGE_ONCE))}
        # Spend while Redis was away, in order: (keys, hold id, micro-dollars, estimated); and by
        # Redis key, the last figure read.
        self._kept: list[tuple[list[str], str, int, bool]] = []
        self._last: dict[str, int] = {}
        # Holds admitted while Redis was away: {spend key: {hold id: (micros, expires, due)}}.
        self._local: dict[str, dict[str, tuple[int, float, bool]]] = {}
        # Settlements of holds kept in Redis that could not reach it: (keys, settle args).
        self._unsettled: list[tuple[list[str], list]] = []
        # One writer of kept spend at a time: two would write the same figures twice.
        self._flushing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._health = health or StoreHealth("budgets", "redis")

    def _keys(self, scope_id: str, period_key: str) -> list[str]:
        suffix = f"{{{scope_id}:{period_key}}}"  # the hash tag: one cluster slot for all four
        return [self._prefix + suffix, f"{self._prefix}held:{suffix}", f"{self._prefix}holds:{suffix}",
                f"{self._prefix}estimated:{suffix}"]

    def _unreachable(self, exc: Exception) -> None:
        self._health.failed(exc)
        if not self.fail_open:
            raise LedgerUnavailable(str(exc)) from exc

    def _known(self, key: str) -> int:
        # Queued settlements count too: args [member, held, spent, estimated, due] (SETTLE).
        queued = sum(args[2] for keys, args in self._unsettled if keys[0] == key or (keys[3] == key and args[3]))
        kept = sum(micros for keys, _, micros, estimated in self._kept if keys[0] == key or (keys[3] == key and estimated))
        return self._last.get(key, 0) + kept + queued

    def _keep(self, keys: list[str], hold_id: str, micros: int, estimated: bool) -> None:
        """Spend to write when Redis is back: once, under the hold's id, however often it is sent."""
        if micros:
            self._kept.append((keys, hold_id, micros, estimated))

    def _local_held(self, keys: list[str], now: float) -> int:
        holds = self._local.get(keys[0], {})
        for hold_id in [h for h, (_, expires, _) in holds.items() if expires <= now]:
            micros, _, due = holds.pop(hold_id)
            if due:  # expired unsettled: charged as estimated, as the Redis sweep does
                self._keep(keys, hold_id, micros, estimated=True)
        return sum(micros for micros, _, _ in holds.values())

    async def totals(self, scope_id: str, period_key: str, now: float) -> Totals:
        keys = self._keys(scope_id, period_key)
        held = self._local_held(keys, now)
        try:
            async with asyncio.timeout(self._timeout):
                await self.flush()
                spent, shared, estimated = (int(v) for v in await self._scripts["totals"](keys=keys, args=[now]))
            self._last[keys[0]], self._last[keys[3]] = spent, estimated
            held += shared
            self._health.ok()
        except self._down as exc:
            self._unreachable(exc)
        return Totals(from_micros(self._known(keys[0])), from_micros(held), from_micros(self._known(keys[3])))

    async def reserve(self, hold: Hold, limit: Decimal, now: float) -> tuple[bool, Totals]:
        keys = self._keys(hold.scope_id, hold.period_key)
        # A due hold must still be there to be charged when it is next swept.
        ttl = max(1, math.ceil(hold.expires - now) + (2 * 86400 if hold.due else 60))
        try:
            async with asyncio.timeout(self._timeout):
                await self.flush()
                reply = await self._scripts["reserve"](keys=keys, args=[now, to_micros(limit), hold.micros,
                                                                        _member(hold), hold.expires, ttl])
            admitted, spent, held, estimated = (int(v) for v in reply)
            self._last[keys[0]], self._last[keys[3]] = spent, estimated
            self._health.ok()
            return bool(admitted), Totals(from_micros(spent), from_micros(held), from_micros(estimated))
        except self._down as exc:
            self._unreachable(exc)
        spent, held = self._known(keys[0]), self._local_held(keys, now)
        before = Totals(from_micros(spent), from_micros(held), from_micros(self._known(keys[3])))
        if spent + held >= to_micros(limit):
            return False, before
        self._local.setdefault(keys[0], {})[hold.id] = (hold.micros, hold.expires, hold.due)
        return True, before

    async def settle(self, hold: Hold, usd: Decimal, estimated: bool) -> None:
        keys = self._keys(hold.scope_id, hold.period_key)
        micros = to_micros(usd)
        if self._local.get(keys[0], {}).pop(hold.id, None) is not None:
            # Admitted during an outage: only the charge goes to Redis. The admission's script may
            # have run there all the same, its reply cut short by the time limit: that hold is
            # released too, or it would be charged again when it expires.
            self._keep(keys, hold.id, micros, estimated)
            self._unsettled.append((keys, [_member(hold), hold.micros, 0, 0, 1 if hold.due else 0]))
            try:
                await self.flush()
            except self._down as exc:
                self._health.failed(exc)
            return
        args = [_member(hold), hold.micros, micros, 1 if estimated else 0, 1 if hold.due else 0]
        try:
            await self.flush()
            self._last[keys[0]] = int(await self._scripts["settle"](keys=keys, args=args))
            self._health.ok()
        except self._down as exc:
            self._health.failed(exc)
            # Replayed through the script: the hold is removed with its charge, not charged again
            # when it expires.
            self._unsettled.append((keys, args))

    async def incr(self, key: str, n: int, ttl_s: float) -> int:
        try:
            total = int(await self._scripts["adjust"](keys=[self._prefix + "count:" + key], args=[n, int(ttl_s)]))
        except self._down as exc:
            self._health.failed(exc)
            return await self._fallback.incr(key, n, ttl_s)
        self._health.ok()
        return total

    async def take(self, key: str, n: int, limit: int, ttl_s: float) -> tuple[bool, int]:
        try:
            async with asyncio.timeout(self._timeout):
                admitted, used = await self._scripts["take"](keys=[self._prefix + "count:" + key], args=[n, limit, int(ttl_s)])
            self._health.ok()
            return bool(admitted), int(used)
        except self._down as exc:
            self._unreachable(exc)
            return await self._fallback.take(key, n, limit, ttl_s)

    async def flush(self) -> None:
        """Writes what was kept while Redis was away (raises what an unreachable Redis raises)."""
        if not (self._unsettled or self._kept):
            return
        async with self._flushing:
            await self._write_kept()

    async def _write_kept(self) -> None:
        while self._unsettled:
            keys, args = self._unsettled[0]
            self._last[keys[0]] = int(await self._scripts["settle"](keys=keys, args=args))
            self._unsettled.pop(0)
        while self._kept:
            keys, hold_id, micros, estimated = self._kept[0]
            # A write cut short (a timeout, a primary lost before its reply) is sent again: the
            # script adds it only the first time it sees the hold's id.
            written = self._prefix + "written:" + keys[0][len(self._prefix):]
            spent, estimated_total = await self._scripts["charge_once"](
                keys=[keys[0], keys[3], written], args=[hold_id, micros, 1 if estimated else 0, WRITTEN_TTL_S])
            self._last[keys[0]], self._last[keys[3]] = int(spent), int(estimated_total)
            self._kept.pop(0)

    # A worker service: kept spend is written within FLUSH_INTERVAL_S of Redis's return even when
    # no request comes, and once more when the worker stops.
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_back(), name="budget-write-back")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task  # not cancelled: a write it has started is let finish
        for attempt in range(FINAL_ATTEMPTS):
            try:
                await self.flush()
                self._health.ok()
                break
            except self._down as exc:
                self._health.failed(exc)
            if attempt + 1 < FINAL_ATTEMPTS:
                # A cluster client that has just lost a primary learns the new one from its next
                # refresh of the slot map (edge_ext.redis_clients.MIN_REFRESH_INTERVAL_S).
                await asyncio.sleep(FINAL_RETRY_S)
        # What could not be written is lost with this worker: say so, per key, for the operator.
        lost: dict[str, int] = {}
        for keys, _, micros, estimated in self._kept:
            for key in (keys[0], keys[3]) if estimated else (keys[0],):
                lost[key] = lost.get(key, 0) + micros
        for keys, args in self._unsettled:
            for key in (keys[0], keys[3]) if args[3] else (keys[0],):
                lost[key] = lost.get(key, 0) + args[2]
        for key, micros in sorted(lost.items()):
            if micros:
                log.error("budget spend not written to Redis, lost with this worker: %s %s USD (add it to that key "
                          "once Redis is back)", key, from_micros(micros))

    async def _write_back(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except self._down as exc:
                self._health.failed(exc)  # still away: the next tick, or the next request, tries again
