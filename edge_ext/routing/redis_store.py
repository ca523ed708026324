"""Breaker state shared between replicas through Redis, without Redis on the hot path.

Every decision is made by a local store (``MemoryBreakerStore`` or the machine's
``LocalBreakerStore``); this class wraps it. ``apply`` runs the event locally, queues what the
other replicas need to know, and returns: it never awaits and never raises. One background task
sends the queue and, every ``refresh_seconds``, reads the providers' Redis records and folds
peers' openings into the local store. With Redis down the task counts errors (``errors``, and
its ``StoreHealth``: a metric and a log line, edge_ext.health) and the local store simply keeps
deciding alone; when Redis returns, breakers that are open here but missing there are published
again.

The record format and scripts are in ``edge_ext.routing.redis_layout``. No pub/sub: polling one
pipelined HGETALL per refresh is simpler to keep alive across Redis restarts than a
subscription, and 0.5 s is well inside "within a second or two".

Concurrency: the failure count and the "threshold reached, open it" decision run in one Lua
script, so two replicas failing at the same moment each add to the same counter and exactly
the increment that reaches the threshold opens the breaker. Only that closed -> open rule is
shared; half-open probing stays per replica (its probes test *this* replica's path to the
provider, and coordinating probes would put Redis on the request path).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from edge_ext.health import StoreHealth
from edge_ext.routing.breaker import BreakerEvent, BreakerRecord, BreakerState, EventKind, Step, open_seconds_for
from edge_ext.routing.redis_layout import CLOSE_SCRIPT, COUNT_FAILURE, MAX_HOLD, OPEN_SCRIPT, RemoteRecord, breaker_key, parse_remote
from edge_ext.routing.breaker_store import BreakerStore, MemoryBreakerStore

_OPEN, _CLOSED = BreakerState.OPEN, BreakerState.CLOSED
_NO_RECORD = RemoteRecord()


class RedisBreakerStore:
    def __init__(self, redis_client: Any, prefix: str, replica_id: str, local: BreakerStore | None = None, *,
                 refresh_seconds: float = 0.5, timeout_seconds: float = 0.05, key_ttl_seconds: int = 86400,
                 health: StoreHealth | None = None, max_pending: int = 10_000):
        self.redis = redis_client
        self.prefix = prefix
        self.replica_id = replica_id
        self.local: BreakerStore = local if local is not None else MemoryBreakerStore()
        self.settings = self.local.settings
        self.refresh_seconds = refresh_seconds
        self.timeout_seconds = timeout_seconds
        self.key_ttl_seconds = key_ttl_seconds
        self.health = health or StoreHealth("breakers", "redis")
        self.errors = 0
        self.healthy = False  # the last round trip succeeded
        self._watched: set[str] = set()
        self._remote: dict[str, RemoteRecord] = {}
        self._force_seen: dict[str, int] = {}  # last force_seq adopted per provider
        # Oldest updates are dropped first when Redis is away long enough to fill this.
        self._pending: deque[tuple[Any, ...]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # -- hot path: local only ---------------------------------------------------------------
    def now(self) -> float:
        return self.local.now()

    def key(self, provider: str) -> str:
        return breaker_key(self.prefix, provider)

    def watch(self, providers: Iterable[str]) -> None:
        """Follow these providers' shared state from the next refresh on, before any traffic."""
        self._watched.update(providers)

    def record(self, provider: str) -> BreakerRecord:
        self._watched.add(provider)
        return self.local.record(provider)

    def apply(self, provider: str, event: BreakerEvent) -> Step:
        self._watched.add(provider)
        before = self.local.record(provider)
        result = self.local.apply(provider, event)
        self._share(provider, event, before, result.record)
        return result

    def _share(self, provider: str, event: BreakerEvent, before: BreakerRecord, after: BreakerRecord) -> None:
        kind, now = event.kind, self.now()
        if kind is EventKind.FAILURE:
            if after.state is _OPEN and (before.state is not _OPEN or after.open_until > before.open_until):
                self._queue("open", provider, after.open_until)
            elif after.state is not _OPEN:
                self._queue("fail", provider, now + open_seconds_for(event, self.settings))
        elif kind is EventKind.SUCCESS:
            if before.state is BreakerState.HALF_OPEN and after.state is _CLOSED:
                self._queue("close", provider)
            elif after.state is _CLOSED and (remote := self._remote.get(provider, _NO_RECORD)).failures > 0:
                # Once per refresh, not once per success: the snapshot is zeroed until re-read.
                self._remote[provider] = replace(remote, failures=0)
                self._queue("reset", provider)
        elif kind is EventKind.FORCE:
            self._queue("force", provider, after.state.value, after.open_until)

    def _queue(self, *op: Any) -> None:
        self._pending.append(op)
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- background -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._task = asyncio.create_task(self._run(), name=f"breaker-redis-{self.replica_id}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._loop = self._loop_thread = None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> RedisBreakerStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def sync(self) -> bool:
        """One send-and-read round now; False when Redis did not answer."""
        ok = await self._round_trip(self._flush)
        return await self._round_trip(self._refresh) and ok

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while True:
            delay = next_refresh - loop.time()
            # After a failed round trip only the refresh tick retries, so a dead Redis costs
            # two attempts a second, not one per request.
            if delay > 0 and (not self._pending or not self.healthy):
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if loop.time() >= next_refresh:
                await self.sync()
                next_refresh = loop.time() + self.refresh_seconds
            elif self.healthy and self._pending:
                await self._round_trip(self._flush)

    async def _round_trip(self, action: Callable[[], Any]) -> bool:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await action()
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the breaker keeps working
            self.healthy = False
            self.errors += 1
            self.health.failed(exc)
            return False
        self.healthy = True
        self.health.ok()
        return True

    async def _flush(self) -> None:
        ops = list(self._pending)
        self._pending.clear()
        if not ops:
            return
        now, ttl, me = self.now(), self.key_ttl_seconds, self.replica_id
        pipe = self.redis.pipeline(transaction=False)
        main: list[int] = []  # index of each op's own reply among the pipeline's replies
        for op, provider, *args in ops:
            key = self.key(provider)
            main.append(len(pipe))
            if op == "fail":
                until = min(args[0], now + MAX_HOLD)
                pipe.eval(COUNT_FAILURE, 1, key, self.settings.failure_threshold, f"{now:.6f}", f"{until:.6f}", me, ttl)
            elif op == "open":
                pipe.eval(OPEN_SCRIPT, 1, key, f"{min(args[0], now + MAX_HOLD):.6f}", f"{now:.6f}", me, ttl)
            elif op == "close":
                pipe.eval(CLOSE_SCRIPT, 1, key, f"{now:.6f}", me, ttl)
            elif op == "reset":
                pipe.hset(key, "failures", 0)
                pipe.expire(key, ttl)
            else:  # force: an admin's word replaces whatever is there
                state, until = args
                until = min(until, now + MAX_HOLD) if state == _OPEN.value else 0.0
                pipe.hset(key, mapping={"state": state, "open_until": f"{until:.6f}", "failures": 0,
                                        "updated_at": f"{now:.6f}", "updated_by": me, "forced": 1})
                pipe.hincrby(key, "force_seq", 1)
                pipe.expire(key, ttl)
        replies = await pipe.execute()
        # A failure count that crossed the threshold opened the provider for everyone: here too.
        for (op, provider, *args), index in zip(ops, main):
            if op == "fail" and replies[index] == 1:
                self.local.apply(provider, BreakerEvent.peer_open(args[0]))

    async def _refresh(self) -> None:
        providers = sorted(self._watched)
        if not providers:
            await self.redis.ping()
            return
        pipe = self.redis.pipeline(transaction=False)
        for provider in providers:
            pipe.hgetall(self.key(provider))
        rows = await pipe.execute()
        now = self.now()
        for provider, row in zip(providers, rows):
            remote = parse_remote(row or {})
            self._remote[provider] = remote
            self._merge(provider, remote, now)

    def _merge(self, provider: str, remote: RemoteRecord, now: float) -> None:
        local = self.local.record(provider)
        if not remote.state:
            # Redis lost the record (restart, eviction): its force counter starts over, and an
            # opening that still runs here has to be published again.
            self._force_seen.pop(provider, None)
            if local.state is _OPEN and local.open_until > now:
                self._queue("open", provider, local.open_until)
        elif remote.forced and remote.force_seq > self._force_seen.get(provider, 0):
            self._force_seen[provider] = remote.force_seq
            if remote.updated_by != self.replica_id:
                hold = max(remote.open_until - now, 0.0) if remote.state == _OPEN.value else None
                self.local.apply(provider, BreakerEvent.forced(BreakerState(remote.state), hold))
        elif remote.state == _OPEN.value and remote.open_until > now:
            if local.state is not _OPEN or remote.open_until > local.open_until:
                self.local.apply(provider, BreakerEvent.peer_open(remote.open_until))
