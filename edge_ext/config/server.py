"""Where edge-ext runs and listens: the Envoy listener, the processor workers,
Envoy's own settings, and the metrics and telemetry endpoints."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge_ext.config.base import Strict
from edge_ext.config.hosts import is_loopback


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
    # How long a client may take, so that no client holds a connection and a processor stream
    # open at will: to send its request headers; to send the whole request (until Envoy sends
    # it upstream or answers; a streamed answer is bounded by the provider's timeout_s instead);
    # and between two bytes in either direction, the wait for a provider's first byte included.
    request_headers_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    request_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    stream_idle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0


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
    # unix:DIR puts worker N on DIR/worker-N.sock; HOST:PORT puts worker N on PORT+N (mTLS
    # required). Unset: Unix sockets in this instance's state directory.
    address: str | None = None
    # This instance's private directory (0700): worker and admin sockets, disk cache, shared
    # breaker state, spend ledger, admin token. Unset: the socket directory of a unix: address,
    # else one per config file (filled in by the loader, see edge_ext.config.instance).
    state_dir: str | None = None
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
    # A TCP processor without mTLS answers anyone who reaches its port, provider credentials
    # included: only for a network that authenticates peers itself, and only when said so.
    allow_plaintext_tcp: bool = False
    # The admin API (status, spend, breakers) listens on its own Unix socket per worker,
    # <state_dir>/admin/worker-N.sock, and wants this token as a bearer credential. Unset:
    # <state_dir>/admin.token, generated on first start.
    admin_token_file: str | None = None

    @field_validator("address", "state_dir")
    @classmethod
    def _address(cls, value: str | None, info) -> str | None:
        if value is None:
            return None
        if info.field_name == "state_dir":
            if not value.startswith("/"):
                raise ValueError("state_dir must be an absolute path")
            return value.rstrip("/") or "/"
        if value.startswith("unix:"):
            if not value[5:].startswith("/"):
                raise ValueError("unix: address needs an absolute directory, e.g. unix:/run/edge-ext")
            return value
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}", value):
            raise ValueError("must be unix:/DIR or HOST:PORT")
        return value

    @model_validator(mode="after")
    def _tcp_needs_mtls(self) -> "Processor":
        if self.address and not self.is_unix and self.mtls is None and not self.allow_plaintext_tcp:
            raise ValueError(f"address {self.address} is TCP without mtls: anyone who reaches the port could ask "
                             "for provider credentials. Configure processor.mtls, use a unix: address, or set "
                             "processor.allow_plaintext_tcp: true where the network authenticates peers itself")
        return self

    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers == "auto" else max(1, int(self.workers))

    @property
    def directory(self) -> str:
        """This instance's private state directory."""
        if self.state_dir:
            return self.state_dir
        if self.address and self.is_unix:
            return self.address[5:].rstrip("/") or "/"
        from edge_ext.config.instance import default_state_dir

        return default_state_dir(None)

    @property
    def socket_address(self) -> str:
        """The workers' address: the configured one, else Unix sockets in the state directory."""
        return self.address or f"unix:{self.directory}"

    @property
    def is_unix(self) -> bool:
        return self.socket_address.startswith("unix:")

    def worker_address(self, index: int) -> str:
        """gRPC bind/target string of worker ``index``."""
        address = self.socket_address
        if address.startswith("unix:"):
            return f"unix:{address[5:].rstrip('/')}/worker-{index}.sock"
        host, _, port = address.rpartition(":")
        return f"{host}:{int(port) + index}"

    def admin_address(self, index: int) -> str:
        return f"unix:{self.directory}/admin/worker-{index}.sock"

    @property
    def edge_admin_address(self) -> str:
        """The supervisor's admin socket (Reload), beside the workers' ones."""
        return f"unix:{self.directory}/admin/edge.sock"

    @property
    def admin_token_path(self) -> str:
        return self.admin_token_file or f"{self.directory}/admin.token"


class Telemetry(Strict):
    # OTLP/gRPC collector, https://HOST:PORT (TLS) or http://HOST:PORT (plaintext); unset: off.
    otlp_endpoint: str | None = None
    # Spans name tenants, key ids, models and costs. Plaintext to a collector on another machine
    # is the operator's explicit choice: http:// there needs insecure: true.
    insecure: bool | None = None
    service_name: str = "edge-ext"
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _transport(self) -> "Telemetry":
        if self.otlp_endpoint is None:
            return self
        parts = urlsplit(self.otlp_endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("otlp_endpoint must be https://HOST:PORT (TLS) or http://HOST:PORT (plaintext): "
                             "without a scheme the transport would be a guess")
        if parts.scheme == "https" and self.insecure:
            raise ValueError("insecure: true contradicts an https:// otlp_endpoint")
        if parts.scheme == "http" and self.insecure is False:
            raise ValueError("insecure: false contradicts an http:// otlp_endpoint; use https://")
        if parts.scheme == "http" and not self.insecure and not is_loopback(parts.hostname):
            raise ValueError(f"otlp_endpoint {self.otlp_endpoint} sends spans unencrypted to another machine: "
                             "use https:// or set telemetry.insecure: true")
        return self

    @property
    def plaintext(self) -> bool:
        return urlsplit(self.otlp_endpoint or "").scheme == "http"


class Scrapers(Strict):
    """Who may reach the metrics port in the Kubernetes and Istio renders (a NetworkPolicy rule).
    Metrics name tenants and key ids and carry their spend."""

    # By name: the kubernetes.io/metadata.name label, which only the API server sets.
    namespaces: tuple[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")], ...] = ("monitoring",)
    # Within those namespaces, only pods with these labels; empty: any pod there.
    pod_labels: dict[str, str] = Field(default_factory=dict)


class Metrics(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9464
    # How often each worker writes its values for the endpoint: a scrape lags by at most this,
    # and a worker killed without its last write loses at most this much of its samples.
    flush_interval_s: Annotated[float, Field(ge=0.05, le=60)] = 1.0
    scrapers: Scrapers = Scrapers()


class EnvoyAdmin(Strict):
    """Envoy's admin interface (stats, drain, /quitquitquit, runtime changes).

    Without a port it listens on <state_dir>/envoy-admin.sock, mode 0600: only the instance's
    user can reach it. A port (0: a random one) puts it on host:port, reachable by every local
    user when host is loopback.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] | None = None

    def target(self, processor: "Processor") -> str:
        """Where the supervisor reaches it: http://host:port or unix:/path."""
        if self.port is None:
            return f"unix:{self.socket_path(processor)}"
        return f"http://{self.host}:{self.port}"

    @staticmethod
    def socket_path(processor: "Processor") -> str:
        return f"{processor.directory}/envoy-admin.sock"


class EnvoySettings(Strict):
    admin: EnvoyAdmin = EnvoyAdmin()
    access_log: bool = True
    concurrency: Annotated[int, Field(ge=0, le=256)] = 0
