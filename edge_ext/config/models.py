"""The configuration schema: frozen pydantic models, unknown keys rejected.

Every key is documented in docs/configuration.md; defaults are chosen so that the minimal
config in the README works as is.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_ext.cost.pricing import PricingOverrides

_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


ProviderKind = Literal["openai", "openai_compatible", "anthropic", "azure_openai"]


class Provider(Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    kind: ProviderKind
    base_url: str
    # Keys come from the environment or a file, never from the config text.
    api_key_env: str | None = None
    api_key_file: str | None = None
    models: tuple[str, ...] = ()
    # Public model name -> model name the provider knows it by.
    model_map: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    # azure_openai: the api-version query parameter.
    api_version: str | None = None
    # anthropic: sent unless the client pins its own.
    anthropic_version: str = "2023-06-01"
    # Anthropic requires max_tokens; used when an OpenAI-shaped request omits it.
    default_max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    # Routing: share for `weighted`, order for `failover` (lower first).
    weight: Annotated[float, Field(gt=0)] = 1.0
    priority: int = 0
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key_source(self) -> "Provider":
        if self.api_key_env and self.api_key_file:
            raise ValueError("set api_key_env or api_key_file, not both")
        if not self.models and not self.model_map:
            raise ValueError("list at least one model under models or model_map")
        if self.kind == "azure_openai" and not self.api_version:
            raise ValueError("azure_openai needs api_version (e.g. 2024-10-21)")
        return self

    @property
    def url(self):
        return urlsplit(self.base_url)

    @property
    def tls(self) -> bool:
        return self.url.scheme == "https"

    @property
    def host(self) -> str:
        return self.url.hostname or ""

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.tls else 80)

    @property
    def path_prefix(self) -> str:
        return self.url.path.rstrip("/")

    @property
    def cluster(self) -> str:
        return f"provider_{self.name}"

    def public_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.models, *self.model_map)))

    def upstream_model(self, public: str) -> str:
        return self.model_map.get(public, public)

    def read_key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        if self.api_key_file:
            try:
                with open(self.api_key_file, encoding="utf-8") as fh:
                    return fh.read().strip() or None
            except OSError:
                return None
        return None


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


class Cache(Strict):
    enabled: bool = True
    # temperature_zero: requests with temperature 0 (or opted in by header); always; opt_in.
    policy: Literal["temperature_zero", "always", "opt_in"] = "temperature_zero"
    opt_in_header: str = "x-edge-cache-enable"
    # Entries are private to the caller's key (or tenant) unless this names a shared space.
    shared_namespace: str | None = None
    cache_multiple_choices: bool = False
    # How long identical concurrent misses wait for the first one's answer (Envoy's
    # max_message_timeout, 30 s, bounds it).
    single_flight_wait_s: Annotated[float, Field(ge=0, le=29)] = 25.0
    l1_max_entries: Annotated[int, Field(ge=0)] = 10_000
    l1_max_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    l1_ttl_s: Annotated[float, Field(ge=0)] = 300.0
    l2_ttl_s: Annotated[float, Field(ge=0)] = 3600.0
    max_ttl_s: Annotated[float, Field(ge=0)] = 86400.0
    # redis://host:port/db: the L2 tier shared by replicas. Without it, the workers of one
    # instance share a local disk cache in local_dir.
    redis_url: str | None = None
    redis_read_budget_ms: Annotated[int, Field(ge=1, le=5000)] = 50
    local_dir: str | None = None
    local_size_limit_bytes: Annotated[int, Field(ge=1024 * 1024)] = 1024 * 1024 * 1024

    def local_directory(self, processor: "Processor") -> str:
        if self.local_dir:
            return self.local_dir
        if processor.is_unix:
            return processor.address[5:].rstrip("/") + "/cache"
        return f"/tmp/edge-ext-cache-{processor.address.rpartition(':')[2]}"


class Breaker(Strict):
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    open_seconds: Annotated[float, Field(gt=0)] = 30.0
    success_threshold: Annotated[int, Field(ge=1)] = 2
    half_open_probes: Annotated[int, Field(ge=1)] = 1


class Routing(Strict):
    # round_robin | weighted | failover | least_latency | cost_optimized
    strategy: str = "failover"
    # Public model name -> strategy, for groups that route differently from the default.
    models: dict[str, str] = Field(default_factory=dict)
    least_latency_epsilon: Annotated[float, Field(ge=0, le=1)] = 0.05
    breaker: Breaker = Breaker()
    # In-flight failover: how many providers one request may try before its failure reaches the
    # client (1: none). The first is the strategy's pick; the others follow the group's failover
    # order (priority, then config order), skipping providers whose breaker is not closed.
    max_attempts: Annotated[int, Field(ge=1, le=5)] = 2
    # Replicas share breaker state through Redis (a provider failing for one is avoided by all
    # within about a second); without it, or while it is down, the instance's own state rules.
    redis_url: str | None = None

    @model_validator(mode="after")
    def _known(self) -> "Routing":
        from edge_ext.routing.strategies import REGISTRY

        for where, name in (("strategy", self.strategy), *((f"models.{m}", s) for m, s in self.models.items())):
            if name not in REGISTRY:
                raise ValueError(f"{where}: unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}")
        return self


class Accounting(Strict):
    # Reads every answer's usage (the whole JSON body, or every SSE chunk) to price it: one more
    # ext_proc message per non-streamed answer. Off: answers that need nothing else pass through.
    enabled: bool = True


PiiPolicy = Literal["off", "redact", "block"]


class ClientKey(Strict):
    # A name for logs and metrics; the key itself never appears in the config.
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    tenant: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "default"
    # Public model names this key may use; empty: all.
    models: tuple[str, ...] = ()
    pii: PiiPolicy | None = None
    # Input + output tokens per UTC minute, shared like budgets (see budgets).
    tokens_per_minute: Annotated[int, Field(ge=1)] | None = None


class Auth(Strict):
    # None: on exactly when keys are listed. false: off, for trusted meshes (say so explicitly).
    enabled: bool | None = None
    keys: tuple[ClientKey, ...] = ()
    # What to do with PII found in prompts, unless a key says otherwise.
    pii: PiiPolicy = "off"
    # Keys may also live in Redis (hash {redis_prefix}{sha256}: id, tenant, models, pii).
    redis_url: str | None = None
    redis_prefix: str = "edge-ext:key:"
    redis_cache_ttl_s: Annotated[float, Field(ge=0, le=3600)] = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> "Auth":
        if self.enabled and not self.keys and not self.redis_url:
            raise ValueError("auth.enabled is true but no keys are listed (edge-ext hash-key makes one)")
        digests = [k.sha256.lower() for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("two client keys have the same sha256")
        return self

    @property
    def on(self) -> bool:
        return bool(self.keys or self.redis_url) if self.enabled is None else self.enabled


class Budget(Strict):
    scope: Literal["key", "tenant"]
    id: str  # the key's id (auth.keys[].id) or the tenant
    period: Literal["daily", "monthly", "total"]
    limit_usd: Annotated[float, Field(ge=0)]


class Budgets(Strict):
    limits: tuple[Budget, ...] = ()
    # Replicas share spend through Redis; without it, the workers of an instance share a disk ledger.
    redis_url: str | None = None
    # Redis unreachable: admit requests against the last known spend (open) or refuse (closed).
    # Either way spend is kept and written when Redis returns.
    on_store_error: Literal["fail_open", "fail_closed"] = "fail_open"
    local_dir: str | None = None


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


class Config(Strict):
    listen: Listen = Listen()
    providers: tuple[Provider, ...]
    processor: Processor = Processor()
    metrics: Metrics = Metrics()
    envoy: EnvoySettings = EnvoySettings()
    cache: Cache = Cache()
    routing: Routing = Routing()
    accounting: Accounting = Accounting()
    auth: Auth = Auth()
    budgets: Budgets = Budgets()
    telemetry: Telemetry = Telemetry()
    # Extends or overrides the shipped price table (edge_ext/data/pricing.yaml), per model.
    pricing: PricingOverrides = PricingOverrides()

    @model_validator(mode="after")
    def _unique(self) -> "Config":
        names = [p.name for p in self.providers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"provider names must be unique: {sorted(dup)}")
        if not self.providers:
            raise ValueError("configure at least one provider")
        return self
