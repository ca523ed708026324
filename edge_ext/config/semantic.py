"""The semantic cache (``cache.semantic``): paraphrases answered from the cache.

Off by default and opt-in twice, per model group and per client key: every cacheable miss of an
opted-in request costs an embedding call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_ext.config.base import Strict

# Cosine similarity a candidate must reach. Conservative: a wrong answer costs more than a miss.
DEFAULT_THRESHOLD = 0.92

Similarity = Annotated[float, Field(gt=0.5, le=1.0)]


class SemanticModel(Strict):
    # None: semantic.threshold.
    threshold: Similarity | None = None


class Embedding(Strict):
    # A configured provider (openai, openai_compatible or azure_openai) whose embeddings API is
    # called with that provider's base_url and key; for Azure, `model` is the deployment.
    provider: str
    model: str = "text-embedding-3-small"
    # OpenAI text-embedding-3 models can shorten their vectors; None: the model's own size.
    dimensions: Annotated[int, Field(ge=8, le=8192)] | None = None
    # A slower embedding is a miss (the request goes on to the provider), never an error. Up to
    # processor.message_timeout_ms - 150 it costs no extra ext_proc message (unless it runs late).
    timeout_ms: Annotated[int, Field(ge=10, le=10_000)] = 300


class SemanticIndex(Strict):
    """The in-process index of one worker: the hot set, bounded by entries and bytes."""

    max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_bytes: Annotated[int, Field(ge=1024 * 1024)] = 512 * 1024 * 1024
    ttl_s: Annotated[float, Field(gt=0)] = 3600.0


class Semantic(Strict):
    enabled: bool = False
    # Model groups (public model names) opted in, each with its own threshold if it sets one.
    models: dict[str, SemanticModel] = Field(default_factory=dict)
    # Client key ids (auth.keys[].id) opted in; "*": every caller (also with auth off).
    keys: tuple[str, ...] | Literal["*"] = ()
    threshold: Similarity = DEFAULT_THRESHOLD
    embedding: Embedding | None = None
    # Longer conversations (system prompt and turns) use the exact cache only.
    max_messages: Annotated[int, Field(ge=1, le=1000)] = 8
    max_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 4000
    index: SemanticIndex = SemanticIndex()
    # The shared tier, seen by every worker and replica: the cache's Redis (the `redis` section)
    # when it has vector search (Redis 8, Redis Stack), within cache.redis_read_budget_ms. A
    # plain Redis is found out once and said; Redis down is a miss. Either way, and without a
    # redis section or with this false, each worker's own index answers.
    shared: bool = True

    @model_validator(mode="after")
    def _usable(self) -> "Semantic":
        if self.enabled and self.embedding is None:
            raise ValueError("semantic.enabled needs semantic.embedding (a provider with an embeddings API)")
        if self.enabled and not self.models:
            raise ValueError("semantic.enabled needs semantic.models: the model groups opted in")
        if self.enabled and not self.keys:
            raise ValueError("semantic.enabled needs semantic.keys: the client key ids opted in, or \"*\"")
        return self

    def threshold_for(self, model: str) -> float | None:
        """The threshold of an opted-in model group; None when the group is not opted in."""
        group = self.models.get(model)
        if group is None:
            return None
        return group.threshold if group.threshold is not None else self.threshold

    def opted_in(self, key_id: str) -> bool:
        return self.keys == "*" or key_id in self.keys
