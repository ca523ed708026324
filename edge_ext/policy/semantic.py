"""The semantic step of the policy: after the exact lookup missed, a paraphrase's answer; on the
way back, the answer stored for later paraphrases.

All of the semantic cache's contact with a request is here (the policy calls ``lookup`` once
the request leads its exact key, and ``remember`` once its answer is stored), so that it can move
with the policy core as one piece.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_ext.auth import ANONYMOUS
from edge_ext.cache.key import namespace_for
from edge_ext.policy.decisions import Respond
from edge_ext.providers.headers import answer_variant
from edge_ext.usage import Usage

if TYPE_CHECKING:  # numpy and usearch load only where the semantic cache is configured (wiring)
    import numpy as np

    from edge_ext.cache.entry import Entry
    from edge_ext.policy.accounting import Accounting
    from edge_ext.providers.base import ChatRequest
    from edge_ext.semantic.cache import SemanticCache
    from edge_ext.semantic.prompt import Prompt

SIMILARITY_HEADER = "x-edge-cache-similarity"
TIER = "hit-semantic"


@dataclass(frozen=True, slots=True)
class Pending:
    """What a semantic miss stores once its answer is complete."""

    prompt: Prompt
    vector: np.ndarray
    namespace: str
    model: str


@dataclass(frozen=True, slots=True)
class Ask:
    """An opted-in request's lookup, before its embedding."""

    prompt: Prompt
    threshold: float
    namespace: str
    model: str


class SemanticStep:
    def __init__(self, cache: SemanticCache, shared_namespace: str | None, accounting: Accounting | None,
                 message_timeout_s: float,
                 on_embedding: Callable[[str, str, float, int, float | None], None] = lambda *a: None):
        self.cache = cache
        self._shared_namespace = shared_namespace
        self._accounting = accounting
        self._on_embedding = on_embedding
        # The lookup runs within the request body's ext_proc message. An embedding timeout that
        # leaves under 150 ms of Envoy's deadline for the rest asks for a longer deadline first
        # (one more message); a shorter one costs none.
        timeout_s = cache.config.embedding.timeout_ms / 1000
        self.extend_s = timeout_s + 1.0 if timeout_s + 0.15 > message_timeout_s else None

    def prepare(self, st, request: ChatRequest) -> Ask | None:
        """The lookup to make, or None when the caller, the model group or the conversation is not
        for the semantic cache."""
        caller = st.caller
        threshold = self.cache.threshold(caller.key_id, request.model)
        if threshold is None:
            return None
        namespace = namespace_for(st.headers, self._shared_namespace, caller.tenant if caller is not ANONYMOUS else None)
        prompt = self.cache.prompt(namespace, request.api, request.body, answer_variant(st.headers))
        return Ask(prompt, threshold, namespace, request.model) if prompt is not None else None

    async def lookup(self, st, ask: Ask) -> tuple[Entry, float] | None:
        """A stored answer and its similarity, or None (then ``st.semantic`` may hold what to store)."""
        found = await self.cache.lookup(ask.prompt, ask.threshold)
        if found.embedded is None:
            return None
        self._charge(st, found.embedded.input_tokens, found.embedded.seconds)
        if found.entry is not None:
            return found.entry, found.similarity
        st.semantic = Pending(ask.prompt, found.embedded.vector, ask.namespace, ask.model)
        return None

    def _charge(self, st, tokens: int, seconds: float) -> None:
        """The embedding is a call like any other: priced, charged to the caller's tenant, and
        settled against its budgets with the rest of the request (accounting.with_embedding)."""
        embedder = self.cache.embedder
        usd = None
        if self._accounting is not None:
            st.embedding_charge = self._accounting.charge(embedder.provider, embedder.model, Usage(input_tokens=tokens))
            usd = float(st.embedding_charge.cost.usd) if st.embedding_charge.cost.priced else None
        self._on_embedding(embedder.model, st.caller.tenant, seconds, tokens, usd)

    def remember(self, st, entry: Entry | None) -> None:
        pending, st.semantic = st.semantic, None
        if pending is not None and entry is not None:
            self.cache.store(pending.prompt, pending.vector, entry, pending.namespace, pending.model, st.cache_ttl)


def with_similarity(hit: Respond, similarity: float) -> Respond:
    return Respond(hit.status, hit.body, (*hit.headers, (SIMILARITY_HEADER, f"{similarity:.4f}")), hit.details,
                   metadata=hit.metadata)
