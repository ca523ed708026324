"""The semantic cache: after an exact miss, the nearest stored prompt of the same partition
answers when it is similar enough and carries the same negations and numbers.

The worker's own index is searched first; the shared tier (Redis vector search) second, and what
it finds is kept in the worker's index. Stores go to both, the shared one in the background.
Every failure on the way (embedding, Redis) is a miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_ext.cache.entry import Entry
from edge_ext.cache.shared import StoreError
from edge_ext.config.semantic import Semantic
from edge_ext.semantic.embeddings import Embedded, EmbeddingClient
from edge_ext.semantic.guard import same_meaning_marks
from edge_ext.semantic.index import LocalIndex, Record
from edge_ext.semantic.prompt import Prompt
from edge_ext.semantic.shared import SharedVectors

_CANDIDATES = 4


@dataclass(frozen=True, slots=True)
class Lookup:
    embedded: Embedded | None  # None: no embedding could be had (nothing to store either)
    entry: Entry | None = None  # the answer of a hit
    similarity: float | None = None  # the hit's, else the best candidate's (None: no candidate)
    tier: str = ""  # local | shared, for a hit


class SemanticCache:
    def __init__(self, config: Semantic, embedder: EmbeddingClient, local: LocalIndex, shared: SharedVectors | None,
                 on_lookup: Callable[[str, float | None], None] = lambda result, similarity: None):
        self.config = config
        self.embedder, self.local, self.shared = embedder, local, shared
        self._on_lookup = on_lookup
        self._writes: set[asyncio.Task] = set()

    async def lookup(self, prompt: Prompt, threshold: float) -> Lookup:
        embedded = await self.embedder.embed(prompt.text)
        if embedded is None:
            self._on_lookup("no_embedding", None)
            return Lookup(None)
        best = None
        for match in self.local.search(prompt.partition, embedded.vector, _CANDIDATES):
            best = match.similarity if best is None else max(best, match.similarity)
            if match.similarity >= threshold and same_meaning_marks(prompt.text, match.record.text):
                return self._hit(embedded, match.record.entry, match.similarity, "local")
        if self.shared is not None:
            for found in await self.shared.search(prompt.partition, embedded.vector, _CANDIDATES):
                best = found.similarity if best is None else max(best, found.similarity)
                entry = Entry.decode(found.entry)
                if entry is not None and found.similarity >= threshold and same_meaning_marks(prompt.text, found.text):
                    if found.vector.size == embedded.vector.size:
                        self.local.add(found.vector, Record(prompt.partition, found.text, entry, found.tenant, found.model))
                    return self._hit(embedded, entry, found.similarity, "shared")
        self._on_lookup("miss", best)
        return Lookup(embedded, similarity=best)

    def _hit(self, embedded: Embedded, entry: Entry, similarity: float, tier: str) -> Lookup:
        self._on_lookup("hit", similarity)
        return Lookup(embedded, entry, similarity, tier)

    def store(self, prompt: Prompt, vector: np.ndarray, entry: Entry, namespace: str, model: str,
              ttl_s: float | None) -> None:
        ttl = min(ttl_s, self.config.index.ttl_s) if ttl_s is not None else self.config.index.ttl_s
        self.local.add(vector, Record(prompt.partition, prompt.text, entry, namespace, model), ttl)
        if self.shared is not None:
            task = asyncio.get_running_loop().create_task(
                self.shared.put(prompt.partition, vector, prompt.text, entry.encode(), namespace, model, ttl))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def purge(self, namespace: str | None, model: str | None) -> tuple[int, int, str]:
        """Entries removed from this worker's index and from the shared tier, and why the shared
        tier could not be purged ("" when it was, or there is none)."""
        local = self.local.purge(namespace, model)
        if self.shared is None:
            return local, 0, ""
        try:
            return local, await self.shared.purge(namespace, model), ""
        except StoreError as exc:
            return local, 0, str(exc)

    async def drain(self) -> None:
        """Wait for background writes (tests, shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def start(self) -> None:
        await self.embedder.start()

    async def aclose(self) -> None:
        await self.drain()
        await self.embedder.aclose()
