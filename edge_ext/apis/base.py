"""What a client API shape must provide: parse its requests, render its errors and model lists."""

from __future__ import annotations

from typing import Protocol

from edge_ext.apis.limits import RequestLimits
from edge_ext.errors import EdgeError
from edge_ext.message import ChatRequest, Headers

JSON_HEADERS: Headers = (("content-type", "application/json"),)


class ClientAPI(Protocol):
    name: str  # "openai" | "anthropic" | "responses": also the wire API name of provider adapters

    def parse(self, raw: bytes, limits: RequestLimits | None = None) -> ChatRequest: ...

    def error_body(self, err: EdgeError) -> bytes: ...

    def models_body(self, models: tuple[str, ...], created: int) -> bytes: ...
