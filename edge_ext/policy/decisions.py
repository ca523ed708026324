"""What the policy tells the servicer to do with one ext_proc message. Plain data, no protos.

(What it asks the driver to do first, when it needs I/O, is in edge_ext.policy.needs.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edge_ext.frozen import slot_init
from edge_ext.message import Headers


class ResponseMode(Enum):
    """How much of the response the processor still wants to see (sent as a mode override)."""

    NONE = "none"  # nothing: Envoy streams the answer straight through
    BUFFERED = "buffered"  # the whole body in one message
    STREAMED = "streamed"  # every chunk as it arrives (SSE)


@dataclass(frozen=True, slots=True)
class Mode:
    """A processing-mode override. Envoy honours it only in a reply to a headers message."""

    response_headers: bool = False
    response_body: ResponseMode = ResponseMode.NONE
    request_body: bool = True  # the request body too (buffered); False: not sent to the processor


@slot_init
@dataclass(frozen=True, slots=True)
class Continue:
    set_headers: Headers = ()
    remove_headers: tuple[str, ...] = ()
    # A replacement body. Where Envoy leaves content-length to us, the policy sets it.
    body: bytes | None = None
    # Re-pick the route after set_headers changed the cluster header.
    clear_route_cache: bool = False
    # Written to Envoy's dynamic metadata (namespace edge_ext) for headers and access logs.
    # Pairs, not a dict: decisions are hashable, so the servicer can reuse converted replies.
    metadata: Headers = ()
    mode: Mode | None = None
    # The last message the processor wants of this request: the servicer ends the ext_proc
    # stream after this reply, and Envoy runs no response phase (its outcome comes back
    # through the access log, edge_ext.policy.outcome). Only for a request-body reply.
    last: bool = False


@slot_init
@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the client now; the upstream is never called."""

    status: int
    body: bytes
    headers: Headers = ()
    # Ends up in Envoy's %RESPONSE_CODE_DETAILS%; no spaces.
    details: str = "edge_ext"
    metadata: Headers = ()


CONTINUE = Continue()
Decision = Continue | Respond
