"""The cache step of the policy: look up before routing, record the answer on the way back."""

from __future__ import annotations

import json
from collections.abc import Callable

from edge_ext.cache.entry import Entry
from edge_ext.cache.key import OFF, Directive, cache_key, directive, namespace_for
from edge_ext.cache.singleflight import SingleFlight
from edge_ext.cache.tiered import TieredCache
from edge_ext.config.models import Cache as CacheConfig
from edge_ext.policy.decisions import Respond
from edge_ext.message import ChatRequest
from edge_ext.providers.headers import answer_variant
from edge_ext.policy.shaping import wants_stream_usage
from edge_ext.sse import SSEParser
from edge_ext.translate.accumulate import AnthropicAccumulator, OpenAIAccumulator
from edge_ext.translate.replay import replay_anthropic, replay_openai

# A stored answer is kept whole, in the client's API, and replayed as a stream when one is asked.
ACCUMULATORS = {"openai": OpenAIAccumulator, "anthropic": AnthropicAccumulator}
REPLAYS = {
    "openai": lambda answer, body: replay_openai(answer, include_usage=wants_stream_usage(body)),
    "anthropic": lambda answer, body: replay_anthropic(answer),
}


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
        # An error object is not an answer, whatever the status said.
        if not isinstance(body, dict) or "error" in body:
            return None
        return bytes(self._body)


class CacheStep:
    def __init__(self, config: CacheConfig, cache: TieredCache | None, wall: Callable[[], float]):
        self._config, self._cache, self._wall = config, cache, wall
        self.flights = SingleFlight(config.single_flight_wait_s)

    def directive(self, headers: dict[str, str], request: ChatRequest) -> Directive:
        if self._cache is None or not self._config.enabled:
            return OFF
        c = self._config
        return directive(headers, request.body, default=c.policy, opt_in_header=c.opt_in_header,
                         allow_multiple_choices=c.cache_multiple_choices, max_ttl=c.max_ttl_s)

    def key(self, headers: dict[str, str], request: ChatRequest, tenant: str | None) -> str:
        return cache_key(namespace_for(headers, self._config.shared_namespace, tenant), request.api, request.body,
                         answer_variant(headers))

    async def lookup(self, key: str) -> tuple[Entry | None, str]:
        return await self._cache.get(key)

    async def claim(self, key: str) -> bool:
        return await self._cache.claim(key, self.flights.max_wait)

    def release(self, key: str) -> None:
        self._cache.release(key)

    def finish(self, st, entry: Entry | None) -> None:
        """A leader's answer is known (``entry``) or will never be (None): free its followers and
        its claim on the shared tier."""
        if st.leading:
            st.leading = False
            self.flights.finish(st.cache_key, entry)
        if st.claimed:
            st.claimed = False
            self._cache.release(st.cache_key)

    async def wait_elsewhere(self, key: str) -> Entry | None:
        return await self._cache.wait_for(key, self.flights.max_wait)

    def hit_response(self, entry: Entry, tier: str, request: ChatRequest) -> Respond:
        if request.stream:
            body, ctype = REPLAYS[request.api](json.loads(entry.body), request.body), "text/event-stream"
        else:
            body, ctype = entry.body, "application/json"
        headers = (("content-type", ctype), ("x-edge-cache", tier), ("age", str(entry.age(self._wall()))))
        return Respond(200, body, headers, f"edge_ext_cache_{tier.replace('-', '_')}")

    def store(self, key: str, recorder: Recorder, provider: str, ttl: float | None) -> Entry | None:
        body = recorder.result()
        if body is None:
            return None
        entry = Entry(body, self._wall(), recorder.api, provider)
        self._cache.put(key, entry, ttl)
        return entry
