"""The plain types the client APIs, the provider adapters and the policy all speak: header pairs
and the client's parsed request. A module of its own, below those packages, so that none of them
imports another's to name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_ext.frozen import slot_init

# Header (or metadata) pairs, in order. Tuples, not dicts: decisions holding them stay hashable.
Headers = tuple[tuple[str, str], ...]


@slot_init
@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A parsed, validated request in the shape of the client's API (``api``)."""

    body: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    api: str = "openai"
    # The body differs from the client's bytes (e.g. PII redacted): it must be re-serialized.
    rewritten: bool = False
    # What is asked of the provider: "chat", or one of edge_ext.apis.operations' (embeddings,
    # count_tokens), which only providers speaking ``api`` serve, untranslated.
    operation: str = "chat"
