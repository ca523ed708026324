"""Anthropic's token counting request (``POST /v1/messages/count_tokens``) as clients send it.

The body of a Messages request without its output settings: the same checks as
``/v1/messages`` (edge_ext.apis.anthropic), except that ``max_tokens`` is not required, and
``stream`` is refused (a count is one small JSON answer).
"""

from __future__ import annotations

from edge_ext.apis.json_body import chat_basics
from edge_ext.apis.limits import RequestLimits, check_shape
from edge_ext.apis.schema import anthropic_style
from edge_ext.apis.validate import anthropic_fields
from edge_ext.errors import InvalidRequest
from edge_ext.message import ChatRequest

OPERATION = "count_tokens"


def parse(raw: bytes, limits: RequestLimits | None = None) -> ChatRequest:
    body, model, stream = chat_basics(raw, anthropic_style)
    if stream or "stream" in body:
        raise InvalidRequest("stream: Extra inputs are not permitted", param="stream")
    if limits is not None:
        check_shape(body, limits)  # before the walks it bounds
    anthropic_fields(body)
    return ChatRequest(body=body, raw=raw, model=model, stream=False, api="anthropic", operation=OPERATION)
