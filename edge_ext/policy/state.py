"""Per-stream state: one typed object per ext_proc stream (one HTTP request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_ext.apis.base import ClientAPI
    from edge_ext.auth import Caller
    from edge_ext.policy.endpoints import Handler
    from edge_ext.policy.caching import Recorder
    from edge_ext.policy.response import ResponseCodec


class Endpoint(Enum):
    CHAT = "chat"  # POST /v1/chat/completions (OpenAI) or /v1/messages (Anthropic)
    MODELS = "models"  # GET /v1/models, answered by the processor
    HEALTH = "health"  # /health/ready: answered by Envoy once the processor has seen it


@dataclass(slots=True)
class StreamState:
    started: float
    request_id: str = ""
    method: str = ""
    path: str = ""
    # What the request headers were dispatched to (edge_ext.policy.endpoints); None until then,
    # or when they were refused.
    handler: Handler | None = None
    # The API shape the client speaks; errors are answered in it.
    api: ClientAPI | Any = None
    # Request headers the policy reads later (lower-case names).
    headers: dict[str, str] = field(default_factory=dict)
    # Who passed auth at the request headers (anonymous only where no keys are configured);
    # None: nobody did, and the request is never routed.
    caller: Caller | None = None
    model: str = ""
    provider: str = ""
    stream: bool = False
    codec: ResponseCodec | None = None
    same_api: bool = True
    cache_status: str = ""
    cache_key: str = ""
    cache_ttl: float | None = None
    recorder: Recorder | None = None
    leading: bool = False  # first in flight in this process: must resolve the followers
    claimed: bool = False  # holds the shared-tier claim on cache_key: must release it
    semantic: Any = None  # a semantic miss's prompt and vector, stored with its answer (edge_ext.policy.semantic)
    embedding_charge: Any = None  # the semantic lookup's embedding call, settled with the request's charge
    upstream_api: str = ""
    upstream_model: str = ""
    meter: Any = None  # usage reader of the answer being received (policy.accounting.Meter)
    charge: Any = None  # usage and cost of the answer, once known (policy.accounting.Charge)
    # Budget and tokens-per-minute reservations (policy.budgeting.Admission), settled at the end.
    admission: Any = None
    response_mode: Any = None
    routed_at: float = 0.0
    request: Any = None  # the client's parsed request (ChatRequest), once routed
    # In-flight failover: the providers Envoy may try in order, how many it tried, and those
    # that failed before the one that answered.
    plan: tuple[str, ...] = ()
    attempts: int = 0
    retried: tuple[str, ...] = ()
    breaker_pending: bool = False  # the router awaits this request's outcome
    # Answered in 2 messages: its outcome (edge_ext.policy.outcome) settles it, not the stream end.
    handed_over: bool = False
    response_status: int = 0
    response_details: str = ""  # Envoy's response code details: via_upstream, or why Envoy answered
    response_bytes: int = 0
    outcome: str = ""
