"""The semantic step of the policy: after the exact lookup missed, a paraphrase's answer; on the
way back, the answer stored for later paraphrases.

Sans-I/O like the rest of the policy: ``ask`` returns the need (embed and search) for a request
that missed the exact cache and leads its key, ``found`` reads its result, ``remember`` leaves the
store for the driver once the answer is stored. The driver (edge_ext.driver) performs both with
the worker's SemanticCache (edge_ext.semantic.cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_ext.auth import ANONYMOUS
from edge_ext.cache.key import namespace_for
from edge_ext.policy.decisions import Respond
from edge_ext.policy.needs import NeedBase
from edge_ext.providers.headers import answer_variant
from edge_ext.semantic.prompt import Prompt, prompt_of
from edge_ext.usage import Usage

if TYPE_CHECKING:  # numpy and usearch load only where the semantic cache is configured (wiring)
    import numpy as np

    from edge_ext.cache.entry import Entry
    from edge_ext.config.semantic import Semantic
    from edge_ext.message import ChatRequest
    from edge_ext.policy.accounting import Accounting
    from edge_ext.semantic.cache import Lookup

SIMILARITY_HEADER = "x-edge-cache-similarity"
TIER = "hit-semantic"


@dataclass(frozen=True, slots=True)
class Pending:
    """What a semantic miss stores once its answer is complete."""

    prompt: Prompt
    vector: np.ndarray
    namespace: str
    model: str


# -- the need and the effect (edge_ext.policy.needs), performed by the driver -----------------
@dataclass(frozen=True, slots=True)
class SemanticLookUp(NeedBase):
    """Embed the conversation and search the semantic cache -> semantic.cache.Lookup."""

    prompt: Prompt
    threshold: float
    namespace: str
    model: str


@dataclass(frozen=True, slots=True)
class StoreSemantic:
    """Keep ``entry`` under the prompt's vector (the worker's index; the shared tier in the background)."""

    pending: Pending
    entry: Entry
    ttl: float | None


class SemanticStep:
    def __init__(self, config: Semantic, embedder: tuple[str, str], shared_namespace: str | None,
                 accounting: Accounting | None, message_timeout_s: float,
                 on_embedding: Callable[[str, str, float, int, float | None], None] = lambda *a: None):
        self._config = config
        self._embedder = embedder  # (provider, model): what the embedding call is charged as
        self._shared_namespace = shared_namespace
        self._accounting = accounting
        self._on_embedding = on_embedding
        # The lookup runs within the request body's ext_proc message. An embedding timeout that
        # leaves under 150 ms of Envoy's deadline for the rest asks for a longer deadline first
        # (one more message); a shorter one asks only when the lookup runs late (a saturated
        # worker: the benchmark's semantic hits at c16 reached a p99 of 435 ms).
        timeout_s = config.embedding.timeout_ms / 1000
        self._extend_s = timeout_s + 1.0 if timeout_s + 0.15 > message_timeout_s else 0.0
        self._slow_s = timeout_s + 1.0

    def ask(self, st, request: ChatRequest) -> SemanticLookUp | None:
        """The lookup to make for a request that missed the exact cache and leads its key, or None
        when the caller, the model group or the conversation is not for the semantic cache."""
        caller = st.caller
        threshold = self._config.threshold_for(request.model) if self._config.opted_in(caller.key_id) else None
        if threshold is None:
            return None
        namespace = namespace_for(st.headers, self._shared_namespace, caller.tenant if caller is not ANONYMOUS else None)
        prompt = prompt_of(namespace, request.api, request.body, answer_variant(st.headers),
                           self._config.max_messages, self._config.max_chars)
        if prompt is None:
            return None
        return SemanticLookUp(prompt, threshold, namespace, request.model, extend_s=self._extend_s, slow_s=self._slow_s)

    def found(self, st, need: SemanticLookUp, result: Lookup) -> tuple[Entry, float] | None:
        """A stored answer and its similarity, or None (then ``st.semantic`` may hold what to store)."""
        if result.embedded is None:
            return None
        self._charge(st, result.embedded.input_tokens, result.embedded.seconds)
        if result.entry is not None:
            return result.entry, result.similarity
        st.semantic = Pending(need.prompt, result.embedded.vector, need.namespace, need.model)
        return None

    def _charge(self, st, tokens: int, seconds: float) -> None:
        """The embedding is a call like any other: priced, charged to the caller's tenant, and
        settled against its budgets with the rest of the request (accounting.with_embedding)."""
        provider, model = self._embedder
        usd = None
        if self._accounting is not None:
            st.embedding_charge = self._accounting.charge(provider, model, Usage(input_tokens=tokens))
            usd = float(st.embedding_charge.cost.usd) if st.embedding_charge.cost.priced else None
        self._on_embedding(model, st.caller.tenant, seconds, tokens, usd)

    def remember(self, st, entry: Entry | None) -> None:
        pending, st.semantic = st.semantic, None
        if pending is not None and entry is not None:
            st.effects.append(StoreSemantic(pending, entry, st.flight.ttl if st.flight is not None else None))


def with_similarity(hit: Respond, similarity: float) -> Respond:
    return Respond(hit.status, hit.body, (*hit.headers, (SIMILARITY_HEADER, f"{similarity:.4f}")), hit.details,
                   metadata=hit.metadata)
