"""The Anthropic Messages API shape as clients speak it."""

from __future__ import annotations

import json
import time

from edge_ext.apis.json_body import chat_basics
from edge_ext.apis.limits import RequestLimits, check_shape
from edge_ext.apis.schema import anthropic_style
from edge_ext.apis.validate import anthropic_fields
from edge_ext.errors import EdgeError, InvalidRequest
from edge_ext.message import ChatRequest

# Anthropic's error types differ from OpenAI's for two statuses; the rest share names.
_TYPES = {404: "not_found_error", 413: "request_too_large", 503: "overloaded_error", 529: "overloaded_error"}


class AnthropicClientAPI:
    name = "anthropic"

    def parse(self, raw: bytes, limits: RequestLimits | None = None) -> ChatRequest:
        body, model, stream = chat_basics(raw, anthropic_style)
        if limits is not None:
            check_shape(body, limits)  # before the walks it bounds
        anthropic_fields(body)
        max_tokens = body.get("max_tokens")
        # The Messages API requires max_tokens; an OpenAI provider behind us would not care, but
        # a client of this API must get the answer Anthropic would give.
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest("max_tokens: field required and must be a positive integer", param="max_tokens")
        return ChatRequest(body=body, raw=raw, model=model, stream=stream, api=self.name)

    def error_body(self, err: EdgeError) -> bytes:
        kind = _TYPES.get(err.status, err.type)
        return json.dumps({"type": "error", "error": {"type": kind, "message": err.message}}, separators=(",", ":")).encode()

    def models_body(self, models: tuple[str, ...], created: int) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        data = [{"type": "model", "id": m, "display_name": m, "created_at": stamp} for m in models]
        return json.dumps(
            {"data": data, "has_more": False, "first_id": models[0] if models else None, "last_id": models[-1] if models else None},
            separators=(",", ":"),
        ).encode()


ANTHROPIC = AnthropicClientAPI()
