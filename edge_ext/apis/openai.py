"""The OpenAI API shape as clients speak it: request basics, error bodies, model lists."""

from __future__ import annotations

import json

from edge_ext.apis.json_body import chat_basics
from edge_ext.apis.limits import RequestLimits, check_shape
from edge_ext.apis.plain_chat import plainly_valid
from edge_ext.apis.validate import openai_fields
from edge_ext.errors import EdgeError
from edge_ext.message import ChatRequest


class OpenAIClientAPI:
    name = "openai"

    def parse(self, raw: bytes, limits: RequestLimits | None = None) -> ChatRequest:
        body, model, stream = chat_basics(raw)
        if not plainly_valid(body, limits):
            # The full checks name the error (and find none where the quick walk was unsure).
            if limits is not None:
                check_shape(body, limits)  # before the walks it bounds
            openai_fields(body)
        return ChatRequest(body, raw, model, stream, self.name)

    def error_body(self, err: EdgeError) -> bytes:
        return json.dumps(
            {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}},
            separators=(",", ":"),
        ).encode()

    def models_body(self, models: tuple[str, ...], created: int) -> bytes:
        data = [{"id": m, "object": "model", "created": created, "owned_by": "edge-ext"} for m in models]
        return json.dumps({"object": "list", "data": data}, separators=(",", ":")).encode()


OPENAI = OpenAIClientAPI()
