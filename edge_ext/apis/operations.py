"""What a client may ask of a provider besides a chat answer, by the name a request carries
(``ChatRequest.operation``, and the ``operation`` route metadata a failover attempt reads).

Each is served only by providers speaking its API (no translation exists for them) and is parsed
by its own module; a chat request is parsed by its client API (edge_ext.apis.by_name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_ext.apis import count_tokens, embeddings
from edge_ext.apis.limits import RequestLimits
from edge_ext.message import ChatRequest

CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    wire_api: str  # the provider API that serves it: "openai" | "anthropic"
    parse: Callable[[bytes, RequestLimits | None], ChatRequest]
    # Priced, counted against budgets and tokens per minute, and cached; token counting is not.
    billed: bool = True


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation(embeddings.OPERATION, "openai", embeddings.parse),
    Operation(count_tokens.OPERATION, "anthropic", count_tokens.parse, billed=False),
)}


def operation_of(request: ChatRequest) -> Operation | None:
    """The request's operation; None for a chat request."""
    return OPERATIONS.get(request.operation)


def billed(request: ChatRequest | None) -> bool:
    """Whether the request is priced and counted (a chat request, or one not parsed yet, is)."""
    op = OPERATIONS.get(request.operation) if request is not None else None
    return op is None or op.billed
