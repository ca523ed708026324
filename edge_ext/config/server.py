"""Where edge-ext runs and listens: the Envoy listener, the processor workers,
Envoy's own settings, and the metrics and telemetry endpoints."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edge_ext.config.base import Strict


class ListenTLS(Strict):
    cert_file: str
    key_file: str


class RateLimit(Strict):
    """Envoy's local token bucket on the listener: over it, 429 without calling the processor."""

    max_tokens: Annotated[int, Field(ge=1)]
    tokens_per_fill: Annotated[int, Field(ge=1)] = 1
    fill_interval_s: Annotated[float, Field(gt=0)] = 1.0


class Listen(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 10000
    # Envoy terminates TLS on the listener when set.
    tls: ListenTLS | None = None
    rate_limit: RateLimit | None = None


class ProcessorMTLS(Strict):
    """Mutual TLS between Envoy and the processor workers (for a processor in another pod)."""

    ca_file: str  # signs both sides' certificates
    server_cert_file: str
    server_key_file: str
    client_cert_file: str  # Envoy's
    client_key_file: str
    # A DNS SAN of the server certificate; Envoy sends it as SNI and checks it.
    server_name: str = "edge-ext-processor"


class Processor(Strict):
    # "auto" = one worker per core.
    workers: int | Literal["auto"] = "auto"
    # unix:DIR puts worker N on DIR/worker-N.sock; HOST:PORT puts worker N on PORT+N.
    address: str = "unix:/tmp/edge-ext"
    # Envoy's per-message deadline; kept above a cold Redis round trip on a busy box.
    message_timeout_ms: Annotated[int, Field(ge=10, le=60000)] = 500
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 8 * 1024 * 1024
    # What one request may cost a worker beyond its size (edge_ext.apis.limits, policy.pii).
    max_messages: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    max_content_parts: Annotated[int, Field(ge=1, le=1_000_000)] = 40_000
    max_scanned_chars: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    # Fail closed: without the processor no provider is chosen and no credential is swapped.
    status_on_error: Annotated[int, Field(ge=400, le=599)] = 503
    mtls: ProcessorMTLS | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.startswith("unix:"):
            if not value[5:].startswith("/"):
                raise ValueError("unix: address needs an absolute directory, e.g. unix:/run/edge-ext")
            return value
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}", value):
            raise ValueError("must be unix:/DIR or HOST:PORT")
        return value

    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers == "auto" else max(1, int(self.workers))

    @property
    def is_unix(self) -> bool:
        return self.address.startswith("unix:")

    def worker_address(self, index: int) -> str:
        """gRPC bind/target string of worker ``index``."""
        if self.is_unix:
            return f"unix:{self.address[5:].rstrip('/')}/worker-{index}.sock"
        host, _, port = self.address.rpartition(":")
        return f"{host}:{int(port) + index}"


class Telemetry(Strict):
    # OTLP/gRPC collector, e.g. http://127.0.0.1:4317; unset: tracing off.
    otlp_endpoint: str | None = None
    insecure: bool = True
    service_name: str = "edge-ext"
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0


class Metrics(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9464


class EnvoyAdmin(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9901


class EnvoySettings(Strict):
    admin: EnvoyAdmin = EnvoyAdmin()
    access_log: bool = True
    concurrency: Annotated[int, Field(ge=0, le=256)] = 0
