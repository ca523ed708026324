"""A per-provider circuit breaker: a pure state machine written as a transition table.

``step(record, event, now, settings)`` is the whole behaviour: it looks up
``TRANSITIONS[(record.state, event.kind)]`` and returns the next immutable record. ``Breaker``
keeps one record in process; the stores in ``edge_ext.routing.shared_state`` run the very same
``step`` under a cross-process lock, so every backend behaves identically by construction.

Times are whatever the injected clock returns: monotonic seconds in process, wall-clock epoch
seconds in a store shared between processes (monotonic clocks differ between processes).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from edge_ext.clock import Clock, monotonic
# The config's own model: the breaker reads its settings as the config validated them.
from edge_ext.config.traffic import Breaker as BreakerSettings
from edge_ext.frozen import slot_init
from edge_ext.routing.failures import FailureKind, classify

__all__ = [
    "ALLOW", "QUIET", "RELEASE", "SUCCESS", "TRANSITIONS", "Breaker", "BreakerApi", "BreakerEvent", "BreakerRecord",
    "BreakerSettings", "BreakerState", "EventKind", "FailureKind", "Step", "classify", "open_seconds_for", "step",
]


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class EventKind(str, enum.Enum):
    ALLOW = "allow"  # "may I send a request now?"; also how time moves an open breaker on
    SUCCESS = "success"
    FAILURE = "failure"
    RELEASE = "release"  # an admitted request ended with no verdict (client gone): frees its probe slot
    FORCE = "force"  # admin override
    PEER_OPEN = "peer_open"  # another replica opened this provider's breaker until ``until``


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    kind: EventKind
    failure: FailureKind | None = None
    retry_after: float | None = None
    state: BreakerState | None = None  # FORCE: the target state
    seconds: float | None = None  # FORCE to open: how long (default open_seconds)
    until: float | None = None  # PEER_OPEN: the peer's deadline

    @staticmethod
    def failed(kind: FailureKind, retry_after: float | None = None) -> BreakerEvent:
        return BreakerEvent(EventKind.FAILURE, failure=kind, retry_after=retry_after)

    @staticmethod
    def forced(state: BreakerState, seconds: float | None = None) -> BreakerEvent:
        return BreakerEvent(EventKind.FORCE, state=BreakerState(state), seconds=seconds)

    @staticmethod
    def peer_open(until: float) -> BreakerEvent:
        return BreakerEvent(EventKind.PEER_OPEN, until=until)


ALLOW = BreakerEvent(EventKind.ALLOW)
SUCCESS = BreakerEvent(EventKind.SUCCESS)
RELEASE = BreakerEvent(EventKind.RELEASE)


@slot_init
@dataclass(frozen=True, slots=True)
class BreakerRecord:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive failures while closed
    successes: int = 0  # probe successes while half-open
    probes: int = 0  # probes in flight while half-open
    open_until: float = 0.0
    probe_until: float = 0.0  # in-flight probes are presumed lost after this
    updated_at: float = 0.0


@slot_init
@dataclass(frozen=True, slots=True)
class Step:
    record: BreakerRecord
    allowed: bool = False  # the answer to ALLOW; False for every other event


Handler = Callable[[BreakerRecord, BreakerEvent, float, BreakerSettings], Step]
_CLOSED, _OPEN, _HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def open_seconds_for(event: BreakerEvent, settings: BreakerSettings) -> float:
    # Retry-After is the provider saying how long it will be unavailable: RFC 9110 defines it for
    # 503 as well as 429, so both are honoured.
    if event.retry_after is not None and event.failure in (FailureKind.STATUS_429, FailureKind.STATUS_5XX):
        ra = event.retry_after
        if math.isfinite(ra):
            return min(max(ra, 0.0), settings.max_retry_after_seconds)
    return settings.open_seconds


def _admit(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    return Step(r, allowed=True)


def _refuse(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    return Step(r)


def _trip(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    return Step(BreakerRecord(_OPEN, open_until=now + open_seconds_for(e, s)))


def _reset_failures(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    return Step(r if r.failures == 0 else replace(r, failures=0))


def _count_failure(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    if r.failures + 1 >= s.failure_threshold:
        return _trip(r, e, now, s)
    return Step(replace(r, failures=r.failures + 1))


def _half_open_when_due(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    if now < r.open_until:
        return Step(r)
    return Step(BreakerRecord(_HALF, probes=1, probe_until=now + s.probe_timeout_seconds), allowed=True)


def _extend_on_retry_after(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    # Late answers of requests admitted before the breaker opened: only a provider's explicit
    # "wait longer" changes anything.
    if e.retry_after is None:
        return Step(r)
    until = now + open_seconds_for(e, s)
    return Step(replace(r, open_until=until) if until > r.open_until else r)


def _admit_probe(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    probes = 0 if now >= r.probe_until else r.probes
    if probes >= s.half_open_probes:
        return Step(r)
    return Step(replace(r, probes=probes + 1, probe_until=now + s.probe_timeout_seconds), allowed=True)


def _probe_succeeded(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    if r.successes + 1 >= s.success_threshold:
        return Step(BreakerRecord(_CLOSED))
    return Step(replace(r, successes=r.successes + 1, probes=max(0, r.probes - 1)))


def _release_probe(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    return Step(r if r.probes == 0 else replace(r, probes=r.probes - 1))


def _force(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    if e.state is _OPEN:
        return Step(BreakerRecord(_OPEN, open_until=now + (s.open_seconds if e.seconds is None else e.seconds)))
    return Step(BreakerRecord(e.state or _CLOSED))


def _adopt_peer_open(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    until = e.until or 0.0
    if until <= now:
        return Step(r)
    return Step(BreakerRecord(_OPEN, open_until=until))


def _extend_to_peer(r: BreakerRecord, e: BreakerEvent, now: float, s: BreakerSettings) -> Step:
    until = e.until or 0.0
    return Step(replace(r, open_until=until) if until > r.open_until else r)


# The state table: a row a state, a column an event (EventKind's order). A row of the wrong length
# fails at import (and test_breaker checks every state has one). In OPEN a late success of a request
# admitted before opening proves little (_refuse).
_TABLE: dict[BreakerState, tuple[Handler, ...]] = {
    #         ALLOW                SUCCESS           FAILURE                 RELEASE         FORCE   PEER_OPEN
    _CLOSED: (_admit,              _reset_failures,  _count_failure,         _refuse,        _force, _adopt_peer_open),
    _OPEN:   (_half_open_when_due, _refuse,          _extend_on_retry_after, _refuse,        _force, _extend_to_peer),
    _HALF:   (_admit_probe,        _probe_succeeded, _trip,                  _release_probe, _force, _adopt_peer_open),
}
TRANSITIONS: dict[tuple[BreakerState, EventKind], Handler] = {
    (state, kind): handler for state, row in _TABLE.items() for kind, handler in zip(EventKind, row, strict=True)
}
# The pairs whose handler leaves a record without counters (no failures, successes nor probes) as
# it is, whatever the time, the settings and the event's other fields, with the answer to ALLOW.
# Stores answer them from a Step built once per record (breaker_store.quiet_steps) instead of
# running the table: ALLOW on a closed breaker is every request, SUCCESS on one every answer.
# test_breaker holds this to TRANSITIONS both ways: these never move such a record, the others can.
QUIET: Mapping[tuple[BreakerState, EventKind], bool] = MappingProxyType({
    (_CLOSED, EventKind.ALLOW): True,
    (_CLOSED, EventKind.SUCCESS): False,
    (_CLOSED, EventKind.RELEASE): False,
    (_OPEN, EventKind.SUCCESS): False,
    (_OPEN, EventKind.RELEASE): False,
    (_HALF, EventKind.RELEASE): False,
})


def step(record: BreakerRecord, event: BreakerEvent, now: float, settings: BreakerSettings) -> Step:
    """The breaker's whole behaviour. A no-op returns the very same record object."""
    result = TRANSITIONS[(record.state, event.kind)](record, event, now, settings)
    if result.record is record:
        return result
    r = result.record
    # Positional rather than replace(): this runs under the shared store's lock.
    stamped = BreakerRecord(r.state, r.failures, r.successes, r.probes, r.open_until, r.probe_until, now)
    return Step(stamped, result.allowed)


class BreakerApi:
    """The caller's view of one provider's breaker, over whatever holds its record."""

    def _apply(self, event: BreakerEvent) -> Step:
        raise NotImplementedError

    @property
    def record(self) -> BreakerRecord:
        raise NotImplementedError

    @property
    def state(self) -> BreakerState:
        return self.record.state

    @property
    def open_until(self) -> float:
        return self.record.open_until

    def allow(self) -> bool:
        """May a request go to this provider now? In half-open a True takes a probe slot."""
        return self._apply(ALLOW).allowed

    def on_success(self) -> None:
        self._apply(SUCCESS)

    def on_failure(self, kind: FailureKind, retry_after: float | None = None) -> None:
        self._apply(BreakerEvent.failed(kind, retry_after))

    def release(self) -> None:
        """An admitted request ended without a verdict (cancelled): give back its probe slot."""
        self._apply(RELEASE)

    def force(self, state: BreakerState, seconds: float | None = None) -> None:
        self._apply(BreakerEvent.forced(state, seconds))


class Breaker(BreakerApi):
    """One provider's breaker, in process."""

    def __init__(self, settings: BreakerSettings = BreakerSettings(), clock: Clock = monotonic,
                 on_transition: Callable[[BreakerState, BreakerState], None] | None = None):
        self.settings = settings
        self._clock = clock
        self._on_transition = on_transition
        self._record = BreakerRecord()

    @property
    def record(self) -> BreakerRecord:
        return self._record

    def _apply(self, event: BreakerEvent) -> Step:
        old = self._record
        result = step(old, event, self._clock(), self.settings)
        self._record = result.record
        if self._on_transition is not None and result.record.state is not old.state:
            self._on_transition(old.state, result.record.state)
        return result
