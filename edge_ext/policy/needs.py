"""The I/O the policy asks for, and the work it leaves behind. Plain data: the policy performs none
of it.

A phase of the policy (edge_ext.policy.engine) returns either a decision (edge_ext.policy.decisions)
or a ``Need``: a description of one I/O operation whose result it needs to go on. The driver
(edge_ext.driver) performs it and hands the result back through ``Policy.resume``, which returns
the next decision or need. A result is the value named on the need, or the ``EdgeError`` the
operation raised (a refusal: a budget exceeded, a key store down, personal data found).

``Effect``s are work whose result nobody waits for (store an answer, settle reservations, free
the followers of a cache miss): the policy appends them to ``StreamState.effects`` and the
driver runs them after the message, off the request path.

A need with ``extend_s`` may take longer than Envoy's per-message deadline: the driver first
asks Envoy to extend it (once per message) by that many seconds. One with ``slow_s`` usually ends
well within the deadline and may not: Envoy is asked for ``slow_s`` more only once the need has
run past most of it (``Driver.soft_deadline_s``), so the common case costs no extra message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_ext.auth import Caller
    from edge_ext.cache.entry import Entry
    from edge_ext.cost.admitted import Admission
    from edge_ext.message import ChatRequest
    from edge_ext.policy.accounting import Charge


# -- needs: the policy waits for their result ------------------------------------------------
@dataclass(frozen=True, slots=True)
class NeedBase:
    """What every need carries: how much longer than Envoy's per-message deadline it may take,
    asked for at once or only when it runs late (module docstring), keyword only."""

    extend_s: float = field(default=0.0, kw_only=True)
    slow_s: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True, slots=True)
class FetchKey(NeedBase):
    """Who holds the client key with this SHA-256 digest (the shared key store) -> Caller | None."""

    digest: str
    # Not for the driver: whether the request headers ended the request (the policy refuses a
    # chat request without a body once the caller is known).
    end_of_stream: bool = False


@dataclass(frozen=True, slots=True)
class Admit(NeedBase):
    """Reserve the request's estimate against the caller's budgets and token rate
    -> Admission | None (None: no limit applies), or the refusal."""

    caller: Caller
    request: ChatRequest


@dataclass(frozen=True, slots=True)
class ParseBody(NeedBase):
    """Decode and shape-check a body too large to decode on the event loop -> ChatRequest, or
    the refusal: ``parse(body, limits)``, an API's or operation's parse."""

    parse: Callable[[bytes, Any], "ChatRequest"]
    body: bytes
    limits: Any  # edge_ext.apis.limits.RequestLimits


@dataclass(frozen=True, slots=True)
class ScanPrompt(NeedBase):
    """Scan (and redact, or refuse) a body too large to scan inline -> ChatRequest, or the refusal."""

    request: ChatRequest
    pii: str  # the policy: "redact" or "block"


@dataclass(frozen=True, slots=True)
class LookUp(NeedBase):
    """The cached answer under ``key`` -> (Entry | None, tier)."""

    key: str


@dataclass(frozen=True, slots=True)
class JoinFlight(NeedBase):
    """Be first in flight in this process for ``key`` -> bool (True: this request leads)."""

    key: str


@dataclass(frozen=True, slots=True)
class Claim(NeedBase):
    """Be the one caller across workers and replicas that fetches ``key`` -> bool."""

    key: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class AwaitEntry(NeedBase):
    """Wait for the answer another request is fetching -> Entry | None (None: not stored)."""

    key: str
    elsewhere: bool  # False: a request of this process leads; True: another worker or replica


Need = FetchKey | Admit | ScanPrompt | LookUp | JoinFlight | Claim | AwaitEntry


# -- effects: nobody waits for them ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Store:
    """Keep ``entry`` under ``key`` (both tiers; the shared one in the background)."""

    key: str
    entry: Entry
    ttl: float | None


@dataclass(frozen=True, slots=True)
class Resolve:
    """The answer for ``key`` is known (or never will be: None): free the requests following it."""

    key: str
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class Release:
    """Give up the shared-tier claim on ``key``."""

    key: str


@dataclass(frozen=True, slots=True)
class Settle:
    """Replace the reservations with the charge, or release them (charge None). A refusal's
    release is ``before_answer``: the client's next request must not find them still held."""

    admission: Admission
    charge: Charge | None
    before_answer: bool = False


Effect = Store | Resolve | Release | Settle
