"""A working fake of everything the driver performs for the sans-I/O policy, for unit tests
that drive whole request lifecycles without an event loop (tests/unit/test_lifecycle.py and
others)."""

from __future__ import annotations

from decimal import Decimal

from edge_ext.cache.entry import Entry
from edge_ext.cost.admission import Admission
from edge_ext.cost.ledger_api import Hold
from edge_ext.errors import EdgeError
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy
from edge_ext.policy.needs import Admit, AwaitEntry, Claim, JoinFlight, LookUp, Need, Release, Resolve, Settle, Store
from edge_ext.policy.state import StreamState

WALL = 1_700_000_000.0


class World:
    """Working fakes of all a driver performs: a cache dict, the flights and claims in progress,
    a budget that admits or refuses, and the settlements made."""

    def __init__(self, refuse: EdgeError | None = None):
        self.cache: dict[str, Entry] = {}
        self.flights: set[str] = set()
        self.claims: set[str] = set()
        self.settled: list[Settle] = []
        self.refuse = refuse
        self.asked: list[type] = []

    def perform(self, need: Need) -> object:
        self.asked.append(type(need))
        match need:
            case LookUp(key=key):
                entry = self.cache.get(key)
                return (entry, "hit-l1") if entry else (None, "miss")
            case JoinFlight(key=key):
                leads = key not in self.flights
                self.flights.add(key)
                return leads
            case Claim(key=key):
                claimed = key not in self.claims
                self.claims.add(key)
                return claimed
            case AwaitEntry(key=key):
                return self.cache.get(key)
            case Admit():
                if self.refuse is not None:
                    raise self.refuse
                return Admission((Hold("tenant:t", "2023-11-14", "h1", Decimal("0.01"), WALL + 900, due=True),))
        raise AssertionError(f"not expected here: {need}")

    def apply(self, st: StreamState) -> None:
        for effect in st.take_effects():
            match effect:
                case Store(key=key, entry=entry):
                    self.cache[key] = entry
                case Resolve(key=key):
                    self.flights.discard(key)
                case Release(key=key):
                    self.claims.discard(key)
                case Settle():
                    self.settled.append(effect)

    def run(self, policy: Policy, st: StreamState, step) -> Continue | Respond:
        """What the driver does: perform each need, feed its result back, then apply the effects."""
        while isinstance(step, Need):
            try:
                result = self.perform(step)
            except EdgeError as err:
                result = err
            step = policy.resume(st, result)
        self.apply(st)
        return step

    def end(self, policy: Policy, st: StreamState) -> None:
        policy.on_stream_end(st)
        self.apply(st)
