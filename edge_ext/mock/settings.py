"""Configuration of one mock provider instance.

The dataclass is frozen so that a running app never observes its settings
changing under it; runtime behaviour changes go through the control API
(``/_mock/faults``) instead.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Mapping

from .ratelimits import RateLimitSpec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18080
DEFAULT_NAME = "mock"

# Environment variables consulted by the CLI when a flag is not given, so a
# container or a compose file can configure the mock without arguments.
ENV_OPENAI_KEY = "EDGE_EXT_MOCK_OPENAI_KEY"
ENV_ANTHROPIC_KEY = "EDGE_EXT_MOCK_ANTHROPIC_KEY"
ENV_AZURE_KEY = "EDGE_EXT_MOCK_AZURE_KEY"
ENV_LATENCY_MS = "EDGE_EXT_MOCK_LATENCY_MS"
ENV_NAME = "EDGE_EXT_MOCK_NAME"

# Upper bounds that keep a misconfigured test from hanging or exhausting
# memory: every sleep and every buffer in the mock is capped by these.
MAX_LATENCY_MS = 120_000
MAX_RECORDED_DEFAULT = 10_000
# Both providers accept request bodies of a few tens of MB (base64 images);
# aiohttp's default 1 MiB limit would reject legitimate multimodal requests.
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Settings of one mock instance.

    ``port=0`` asks the OS for a free port (the bound port is reported by
    :class:`edge_ext.mock.server.MockHandle`). A key left as ``None`` means
    "accept any credential" for that API; a set key must match exactly.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    name: str = DEFAULT_NAME
    latency_ms: int = 0
    openai_key: str | None = None
    anthropic_key: str | None = None
    azure_key: str | None = None
    max_recorded: int = MAX_RECORDED_DEFAULT
    max_body_bytes: int = MAX_BODY_BYTES
    # Rate-limit headers on every API answer (edge_ext.mock.ratelimits); None: none sent.
    rate_limits: RateLimitSpec | None = None
    models: tuple[str, ...] = field(
        default=(
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "o3-mini",
            "claude-sonnet-4-6",
            "claude-haiku-4-5",
            "claude-opus-4-7",
        )
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be within 0..{MAX_LATENCY_MS}: {self.latency_ms}")
        if self.max_recorded < 1:
            raise ValueError("max_recorded must be at least 1")
        if not self.name:
            raise ValueError("name must not be empty")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "MockSettings":
        """Settings from ``EDGE_EXT_MOCK_*`` variables; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "openai_key": env.get(ENV_OPENAI_KEY) or None,
            "anthropic_key": env.get(ENV_ANTHROPIC_KEY) or None,
            "azure_key": env.get(ENV_AZURE_KEY) or None,
            "latency_ms": int(env.get(ENV_LATENCY_MS) or 0),
            "name": env.get(ENV_NAME) or DEFAULT_NAME,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The mock's command-line options, shared by ``python -m edge_ext.mock`` and
    ``edge-ext mock-provider`` (kept here, away from aiohttp, so the CLI starts fast)."""
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--name", default=None, help="value of the x-mock-provider header (default: mock)")
    p.add_argument("--latency-ms", type=int, default=None, help="delay before every API response head")
    p.add_argument("--openai-key", default=None, help="expected OpenAI Bearer key (default: accept any)")
    p.add_argument("--anthropic-key", default=None, help="expected Anthropic key (default: accept any)")
    p.add_argument("--azure-key", default=None, help="expected Azure api-key (default: accept any)")
    p.add_argument("--max-recorded", type=int, default=None, help="recorded requests kept (ring buffer)")
