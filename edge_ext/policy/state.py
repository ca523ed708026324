"""Per-stream state: one typed object per ext_proc stream (one HTTP request), and its lifecycle.

A stream moves through ``Phase`` along ``TRANSITIONS`` only (``StreamState.enter`` refuses any
other move: a bug, answered as an internal error). A request message arriving in a phase
``ARRIVES_IN`` does not list for it is the peer's fault, not the policy's: the servicer ends that
stream with a gRPC status. What a phase needs lives in a sub-state of its own, created when the
phase begins and changed only where named:

    flight     Flight      the request's part in the answer cache     edge_ext.policy.caching
    routed     Routed      the provider call                          created by edge_ext.policy.engine;
                                                                      its codec re-aimed by .failover and .answer
    answering  Answering   how the answer's body is read              edge_ext.policy.answer

What must happen exactly once is taken, not flagged: the breaker verdict the router awaits
(``Routed.take_verdict``), the budget reservations (``take_admission``), the effects left for the
driver (``take_effects``).

The remaining fields are the request's record (who asked, what was asked, who answered, what it
cost): written as the phases learn them, read by metrics, traces and the outcome step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING

from edge_ext.apis.openai import OPENAI

if TYPE_CHECKING:
    from edge_ext.apis.base import ClientAPI
    from edge_ext.auth import Caller
    from edge_ext.cost.admitted import Admission
    from edge_ext.message import ChatRequest
    from edge_ext.policy.accounting import Charge, Meter
    from edge_ext.policy.caching import Recorder
    from edge_ext.policy.decisions import ResponseMode
    from edge_ext.policy.endpoints import Handler
    from edge_ext.policy.needs import Effect, Need
    from edge_ext.policy.response import ResponseCodec
    from edge_ext.policy.semantic import Pending


class Endpoint(Enum):
    CHAT = "chat"  # POST /v1/chat/completions (OpenAI) or /v1/messages (Anthropic)
    RESPONSES = "responses"  # POST /v1/responses (the OpenAI Responses API)
    MODELS = "models"  # GET /v1/models, answered by the processor
    HEALTH = "health"  # /health/ready: answered by Envoy once the processor has seen it
    EMBEDDINGS = "embeddings"  # POST /v1/embeddings (OpenAI)
    COUNT_TOKENS = "count_tokens"  # POST /v1/messages/count_tokens (Anthropic)


class Phase(Enum):
    HEADERS = "headers"  # nothing seen yet: the request headers come first
    BODY = "body"  # the headers passed: the body is next (perhaps after I/O the policy asked for)
    ROUTED = "routed"  # sent to a provider: the answer's phases, or the stream's end, follow
    ANSWERING = "answering"  # the answer's headers were seen: its body passes through the codec
    HANDED_OVER = "handed_over"  # answered in 2 messages: its outcome (edge_ext.policy.outcome) settles it
    DONE = "done"  # answered or let through by the processor: a refusal, a cache hit, /v1/models, health
    ENDED = "ended"  # the stream closed; nothing happens to it any more

    # Members are singletons: identity hashing spares Enum's hash of the name on every move.
    __hash__ = object.__hash__


# An answer of the processor's own (Phase.DONE) may follow any live phase: a refusal, or an
# internal error in a response phase. Every phase ends at ENDED.
TRANSITIONS = MappingProxyType({
    Phase.HEADERS: frozenset({Phase.BODY, Phase.DONE, Phase.ENDED}),
    Phase.BODY: frozenset({Phase.ROUTED, Phase.DONE, Phase.ENDED}),
    Phase.ROUTED: frozenset({Phase.ANSWERING, Phase.HANDED_OVER, Phase.DONE, Phase.ENDED}),
    Phase.ANSWERING: frozenset({Phase.DONE, Phase.ENDED}),
    Phase.HANDED_OVER: frozenset({Phase.ENDED}),
    Phase.DONE: frozenset({Phase.DONE, Phase.ENDED}),
    Phase.ENDED: frozenset(),
})


# Where each request message of a stream may arrive: request headers first and once, the body
# only after headers that asked for it. Anything else is the peer breaking the ext_proc protocol,
# not a client fault nor a policy bug: the servicer ends the stream with a gRPC status before the
# policy sees it. Response messages may come in any phase (Envoy sends them for its own local
# replies too, whether or not the processor saw the request), and the response phases read only
# what the processor routed.
ARRIVES_IN = MappingProxyType({
    "request_headers": frozenset({Phase.HEADERS}),
    "request_body": frozenset({Phase.BODY}),
})


class IllegalTransition(RuntimeError):
    """A phase moved where the lifecycle does not go: a bug in the policy, never a client fault."""


@dataclass(slots=True)
class Flight:
    """The request's part in the answer cache (edge_ext.policy.caching)."""

    key: str
    ttl: float | None
    recorder: Recorder | None = None  # collects the answer to store it
    leading: bool = False  # first in flight in this process: must resolve the followers
    claimed: bool = False  # holds the shared-tier claim on ``key``: must release it


@dataclass(slots=True)
class Routed:
    """The provider call (edge_ext.policy.engine), re-aimed after a failover (.failover)."""

    plan: tuple[str, ...]  # the providers Envoy may try, in order
    codec: ResponseCodec | None  # None: the answer reaches the client as Envoy has it
    # The router awaits this request's verdict (a half-open breaker may have given it its probe
    # slot): given once, by the answer's headers, the outcome, or the stream's end.
    verdict_pending: bool = True

    def take_verdict(self) -> bool:
        """True once: the caller reports (or releases) the verdict the router awaits."""
        pending, self.verdict_pending = self.verdict_pending, False
        return pending


@dataclass(slots=True)
class Answering:
    """How the answer's body is read (edge_ext.policy.answer)."""

    mode: ResponseMode
    meter: Meter | None  # reads the answer's usage; None once it was charged


@dataclass(slots=True)
class StreamState:
    started: float
    api: ClientAPI = OPENAI  # the API shape the client speaks; errors are answered in it
    phase: Phase = Phase.HEADERS
    request_id: str = ""
    method: str = ""
    path: str = ""
    # What the request headers were dispatched to (edge_ext.policy.endpoints); None until then,
    # or when they were refused.
    handler: Handler | None = None
    # Request headers the policy reads later (lower-case names).
    headers: dict[str, str] = field(default_factory=dict)
    # Who passed auth at the request headers (anonymous only where no keys are configured);
    # None: nobody did, and the request is never routed.
    caller: Caller | None = None
    model: str = ""
    stream: bool = False
    request: ChatRequest | None = None  # the client's parsed request, once validated
    # Budget and tokens-per-minute reservations, settled once when the request ends.
    admission: Admission | None = None
    cache_status: str = ""
    flight: Flight | None = None
    routed: Routed | None = None
    answering: Answering | None = None
    # The I/O the policy asked for and awaits (edge_ext.policy.needs); None when it awaits none.
    waiting: Need | None = None
    # Work the policy left for the driver to run after this message, in order.
    effects: list[Effect] = field(default_factory=list)
    # The record: who answered, in which API, after which failed attempts, and what it cost.
    provider: str = ""
    routed_at: float = 0.0
    # The semantic step (edge_ext.policy.semantic): what a semantic miss stores with its answer,
    # and the embedding call's charge, settled with the request's.
    semantic: Pending | None = None
    embedding_charge: Charge | None = None
    upstream_api: str = ""
    upstream_model: str = ""
    same_api: bool = True
    attempts: int = 0
    retried: tuple[str, ...] = ()
    # A content-policy refusal retried on the refusal fallback group: who refused, and that group.
    refused: str = ""
    refusal_fallback: str = ""
    response_status: int = 0
    response_details: str = ""  # Envoy's response code details: via_upstream, or why Envoy answered
    response_bytes: int = 0
    charge: Charge | None = None
    outcome: str = ""

    def enter(self, phase: Phase) -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise IllegalTransition(f"{self.phase.value} -> {phase.value}")
        self.phase = phase

    def take_effects(self) -> list[Effect]:
        effects, self.effects = self.effects, []
        return effects

    def take_admission(self) -> Admission | None:
        """The reservations to settle, once."""
        admission, self.admission = self.admission, None
        return admission

    @property
    def breaker_pending(self) -> bool:
        return self.routed is not None and self.routed.verdict_pending

