"""Upstream providers: kind, address, credentials, models and their routing weights."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge_ext.config.base import Strict, read_secret
from edge_ext.config.hosts import is_loopback

_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


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
    # anthropic: the API version, whatever a client sends.
    anthropic_version: str = "2023-06-01"
    # anthropic: beta features clients may turn on with their anthropic-beta header; any other
    # beta is dropped (a beta changes what the API does, billed to this provider's key).
    anthropic_betas: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")], ...] = ()
    # Anthropic requires max_tokens; used when an OpenAI-shaped request omits it.
    default_max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    # Routing: share for `weighted`, order for `failover` (lower first).
    weight: Annotated[float, Field(gt=0)] = 1.0
    priority: int = 0
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # An http:// base_url off this machine sends the key in plaintext: refused unless set.
    allow_insecure_http: bool = False

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
        if self.anthropic_betas and self.kind != "anthropic":
            raise ValueError("anthropic_betas is for kind anthropic only")
        if self.sends_key_in_plaintext and not self.allow_insecure_http:
            raise ValueError(
                f"base_url {self.base_url} is plain http to another machine and the provider has a key: "
                "the key would cross the network unencrypted; use https:// or set allow_insecure_http: true")
        return self

    @property
    def sends_key_in_plaintext(self) -> bool:
        """A key configured for an http:// upstream that is not this machine."""
        return bool(self.api_key_env or self.api_key_file) and not self.tls and not is_loopback(self.host)

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
        return read_secret(self.api_key_env, self.api_key_file)
