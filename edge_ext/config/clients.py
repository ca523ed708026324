"""Clients and what they may spend: client keys and auth, the PII policy, budgets and
usage accounting."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_ext.config.base import Strict


class Accounting(Strict):
    # Prices every answer from its usage. Streams and answers the processor reads anyway (cache
    # stores, translations) are read by the processor; a plain answer's usage is extracted by
    # Envoy (json_to_metadata) and reaches the processor with its outcome (fast_path).
    enabled: bool = True
    # The common request (same API, not cached, not streamed) in 2 ext_proc messages: the
    # processor ends its stream after the request body, and the outcome (status, usage,
    # timings) comes back through Envoy's gRPC access log, in batches (docs/envoy.md).
    fast_path: bool = True
    # Envoy's access log flush interval: how late an outcome may arrive, at most.
    outcome_flush_ms: Annotated[int, Field(ge=10, le=5000)] = 100
    # How long after the longest request could last an outcome may still settle its budget
    # reservations; then they are charged as estimated (docs/configuration.md).
    outcome_grace_s: Annotated[float, Field(ge=0.5, le=3600)] = 10.0
    # x-edge-cost-usd on plain answers: keeps their response phase (4 messages), since only the
    # processor holds the price table. Off: the figure is in the access log and metrics.
    cost_header: bool = False


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
    # Keys may also live in the `redis` section's Redis (hash {redis_prefix}{sha256}: id,
    # tenant, models, pii).
    redis_keys: bool = False
    redis_prefix: str = "edge-ext:key:"
    redis_cache_ttl_s: Annotated[float, Field(ge=0, le=3600)] = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> "Auth":
        if self.enabled and not self.keys and not self.redis_keys:
            raise ValueError("auth.enabled is true but no keys are listed (edge-ext hash-key makes one)")
        digests = [k.sha256.lower() for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("two client keys have the same sha256")
        return self

    @property
    def on(self) -> bool:
        return bool(self.keys or self.redis_keys) if self.enabled is None else self.enabled


class Budget(Strict):
    scope: Literal["key", "tenant"]
    # The key's id (auth.keys[].id) or the tenant, with their pattern: budget ids travel in
    # request metadata joined by '|' and ';' (edge_ext.cost.admission).
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    period: Literal["daily", "monthly", "total"]
    limit_usd: Annotated[float, Field(ge=0)]


class Budgets(Strict):
    limits: tuple[Budget, ...] = ()
    # Replicas share spend through the `redis` section's Redis; without one, the workers of an
    # instance share a disk ledger.
    # Redis unreachable: admit requests against the last known spend (open) or refuse (closed).
    # Either way spend is kept and written when Redis returns.
    on_store_error: Literal["fail_open", "fail_closed"] = "fail_open"
    local_dir: str | None = None
