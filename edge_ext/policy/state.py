"""Per-stream state: one typed object per ext_proc stream (one HTTP request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Endpoint(Enum):
    CHAT = "chat"  # POST /v1/chat/completions (OpenAI shape)
    HEALTH = "health"  # /health/ready: answered by Envoy once the processor has seen it
    OTHER = "other"


@dataclass(slots=True)
class StreamState:
    started: float
    request_id: str = ""
    method: str = ""
    path: str = ""
    endpoint: Endpoint = Endpoint.OTHER
    # Request headers the policy reads later (lower-case names).
    headers: dict[str, str] = field(default_factory=dict)
    model: str = ""
    provider: str = ""
    stream: bool = False
    response_status: int = 0
    response_bytes: int = 0
    outcome: str = ""
