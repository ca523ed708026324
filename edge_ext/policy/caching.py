"""The cache step of the policy: which requests are cached under which key, what a hit answers,
and which answers are stored. Owns the request's ``Flight`` (edge_ext.policy.state).

The lookups, single-flight waits, claims and writes themselves are I/O: the engine asks for them
(edge_ext.policy.needs) and the driver performs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from edge_ext.apis.responses import stateful
from edge_ext.auth import ANONYMOUS
from edge_ext.cache.entry import Entry
from edge_ext.cache.key import BYPASS, OFF, Directive, cache_key, directive, namespace_for
from edge_ext.config.models import Cache as CacheConfig
from edge_ext.message import ChatRequest
from edge_ext.policy.decisions import Respond
from edge_ext.policy.needs import AwaitEntry, Claim, JoinFlight, LookUp, Release, Resolve, Store
from edge_ext.policy.shaping import wants_stream_usage
from edge_ext.policy.state import Flight, StreamState
from edge_ext.providers.headers import answer_variant
from edge_ext.sse import SSEParser
from edge_ext.translate.accumulate import AnthropicAccumulator, OpenAIAccumulator
from edge_ext.translate.replay import replay_anthropic, replay_openai
from edge_ext.translate.responses import ResponsesAccumulator, replay_responses

# A stored answer is kept whole, in the client's API, and replayed as a stream when one is asked.
ACCUMULATORS = {"openai": OpenAIAccumulator, "anthropic": AnthropicAccumulator, "responses": ResponsesAccumulator}
REPLAYS = {
    "openai": lambda answer, body: replay_openai(answer, include_usage=wants_stream_usage(body)),
    "anthropic": lambda answer, body: replay_anthropic(answer),
    "responses": lambda answer, body: replay_responses(answer),
}
# Requests whose answer depends on, or creates, state the provider keeps: never cached.
STATEFUL = {"responses": stateful}


class Recorder:
    """Collects the client-facing answer; yields an Entry only for a complete success."""

    def __init__(self, api: str, stream: bool):
        self.api, self.stream = api, stream
        self._body = bytearray()
        if stream:
            self._parser = SSEParser()
            self._acc = ACCUMULATORS[api]()

    def feed(self, chunk: bytes) -> None:
        if self.stream:
            for event in self._parser.feed(chunk):
                self._acc.feed(event)
        else:
            self._body += chunk

    def result(self) -> bytes | None:
        if self.stream:
            done = self._acc.result() if self._acc.complete and not self._parser.pending else None
            return json.dumps(done, separators=(",", ":"), ensure_ascii=False).encode() if done else None
        try:
            body = json.loads(self._body)
        except ValueError:
            return None
        # An error object is not an answer, whatever the status said (a Responses API answer
        # carries "error": null, and only a completed one is an answer to keep).
        if not isinstance(body, dict) or body.get("error") is not None or body.get("status", "completed") != "completed":
            return None
        return bytes(self._body)


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    tier: str  # hit-l1 | hit-l2


CacheNeed = LookUp | JoinFlight | Claim | AwaitEntry


class CacheStep:
    """Before routing: ``begin``, then ``resume`` with each need's result, until a ``Hit`` or
    None (ask the provider). A miss leads (single flight in the process, one claim across
    workers and replicas) or follows the request that does."""

    def __init__(self, config: CacheConfig, available: bool, wall: Callable[[], float],
                 on_cache: Callable[[str, int], None] = lambda status, stored: None):
        # ``available``: the driver has a cache to perform lookups and writes on.
        self._config, self._on, self._wall, self._on_cache = config, available and config.enabled, wall, on_cache
        # A follower waits at most this long, within one extension of Envoy's deadline.
        self.max_wait = config.single_flight_wait_s
        self.wait_extend_s = config.single_flight_wait_s + 1

    def _directive(self, headers: dict[str, str], request: ChatRequest) -> Directive:
        if not self._on:
            return OFF
        is_stateful = STATEFUL.get(request.api)
        if is_stateful is not None and is_stateful(request.body):
            return BYPASS
        c = self._config
        # An embedding is deterministic, as a chat answer at temperature 0 is: cached alike.
        policy = "always" if c.policy == "temperature_zero" and request.operation == "embeddings" else c.policy
        return directive(headers, request.body, default=policy, opt_in_header=c.opt_in_header,
                         allow_multiple_choices=c.cache_multiple_choices, max_ttl=c.max_ttl_s)

    def begin(self, st: StreamState, request: ChatRequest) -> CacheNeed | None:
        given = self._directive(st.headers, request)
        st.cache_status = given.status
        if not (given.store or given.lookup):
            return None
        tenant = st.caller.tenant if st.caller is not ANONYMOUS else None
        # An embedding and a chat answer never share a key, whatever their bodies.
        api = request.api if request.operation == "chat" else f"{request.api}.{request.operation}"
        key = cache_key(namespace_for(st.headers, self._config.shared_namespace, tenant), api, request.body,
                        answer_variant(st.headers))
        st.flight = Flight(key, given.ttl)
        if not given.lookup:
            _record(st.flight, request)  # no-cache: the answer refreshes the entry
            return None
        return LookUp(key)

    def resume(self, st: StreamState, need: CacheNeed, result: object) -> Hit | CacheNeed | None:
        flight, request = st.flight, st.request
        if isinstance(need, LookUp):
            entry, tier = result
            if entry is not None:
                self._on_cache(tier, 0)
                return Hit(entry, tier)
            return JoinFlight(flight.key)
        if isinstance(need, JoinFlight):
            if not result:
                return AwaitEntry(flight.key, elsewhere=False, extend_s=self.wait_extend_s)
            flight.leading = True
            return Claim(flight.key, self.max_wait)
        if isinstance(need, Claim):
            if not result:
                return AwaitEntry(flight.key, elsewhere=True, extend_s=self.wait_extend_s)
            flight.claimed = True
        elif result is not None:  # AwaitEntry: the answer the leader stored
            tier = "hit-l2" if need.elsewhere else "hit-l1"
            self._on_cache(tier, 0)
            self.finish(st, result)
            return Hit(result, tier)
        # A miss that leads, or a follower whose leader stored nothing: it asks the provider.
        self._on_cache("miss", 0)
        _record(flight, request)
        return None

    @staticmethod
    def finish(st: StreamState, entry: Entry | None) -> None:
        """A leader's answer is known (``entry``) or will never be (None): free its followers and
        its claim on the shared tier."""
        flight = st.flight
        if flight is None:
            return
        if flight.leading:
            flight.leading = False
            st.effects.append(Resolve(flight.key, entry))
        if flight.claimed:
            flight.claimed = False
            st.effects.append(Release(flight.key))

    def hit_response(self, hit: Hit, request: ChatRequest) -> Respond:
        entry, tier = hit.entry, hit.tier
        if request.stream:
            body, ctype = REPLAYS[request.api](json.loads(entry.body), request.body), "text/event-stream"
        else:
            body, ctype = entry.body, "application/json"
        headers = (("content-type", ctype), ("x-edge-cache", tier), ("age", str(entry.age(self._wall()))))
        return Respond(200, body, headers, f"edge_ext_cache_{tier.replace('-', '_')}")

    @staticmethod
    def recording(st: StreamState) -> Recorder | None:
        return st.flight.recorder if st.flight is not None else None

    @staticmethod
    def drop(st: StreamState) -> None:
        """Only complete successes are stored."""
        if st.flight is not None:
            st.flight.recorder = None

    def store(self, st: StreamState, provider: str) -> Entry | None:
        """At the answer's end: what the recorder collected is stored when it is a whole answer
        (and returned), and the followers get it."""
        flight = st.flight
        recorder, flight.recorder = flight.recorder, None
        body = recorder.result()
        entry = Entry(body, self._wall(), recorder.api, provider) if body is not None else None
        if entry is not None:
            st.effects.append(Store(flight.key, entry, flight.ttl))
        self._on_cache("stored", len(entry.body) if entry else 0)
        self.finish(st, entry)
        return entry


def _record(flight: Flight, request: ChatRequest) -> None:
    flight.recorder = Recorder(request.api, request.stream)
