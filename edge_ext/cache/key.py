"""Cache keys and what makes a request cacheable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# Fields that change how an answer is delivered or attributed, not what it says: a streaming
# and a non-streaming request with the same content share one entry.
DELIVERY_ONLY = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})
_CREDENTIALS = ("authorization", "x-api-key", "api-key")
# What json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds on every
# call, built once: the same encoder, so the same text and the same keys.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(namespace: str, api: str, body: dict[str, Any], variant: tuple[tuple[str, str], ...] = ()) -> str:
    """``variant``: the request headers that reach the provider and change its answer (betas)."""
    canonical = {k: v for k, v in body.items() if k not in DELIVERY_ONLY}
    text = _CANONICAL.encode(canonical)
    # Without a variant the key is what it always was: stored entries stay valid.
    headers = "".join(f"\0{name}={value}" for name, value in variant)
    digest = hashlib.sha256(f"{namespace}\0{api}\0{text}{headers}".encode()).hexdigest()
    return f"{namespace}:{digest}"


def namespace_for(headers: dict[str, str], shared: str | None, tenant: str | None = None) -> str:
    """Entries are private to the caller's tenant (with client keys configured) or credential,
    unless the config names a shared space."""
    if shared:
        return f"shared-{shared}"
    if tenant:
        return f"t-{tenant}"
    for name in _CREDENTIALS:
        value = headers.get(name)
        if value:
            return "k-" + hashlib.sha256(value.encode()).hexdigest()[:24]
    return "anonymous"


@dataclass(frozen=True, slots=True)
class Directive:
    lookup: bool
    store: bool
    status: str  # x-edge-cache value when nothing is found: miss | bypass | off
    ttl: float | None = None


OFF = Directive(False, False, "off")
BYPASS = Directive(False, False, "bypass")
# The two answers without a TTL of their own, built once (a frozen dataclass costs a few
# microseconds to build, and every cacheable request gets one of these).
MISS = Directive(True, True, "miss")
REFRESH = Directive(False, True, "bypass")  # no-cache: the answer refreshes the entry


def directive(headers: dict[str, str], body: dict[str, Any], *, default: str, opt_in_header: str,
              allow_multiple_choices: bool, max_ttl: float) -> Directive:
    control = headers.get("cache-control", "").lower()
    if "no-store" in control:
        return BYPASS
    opted_in = headers.get(opt_in_header, "").lower() in ("1", "true", "on", "yes")
    if default == "always":
        wanted = True
    elif default == "temperature_zero":
        temperature = body.get("temperature")
        wanted = opted_in or (isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 0)
    else:
        wanted = opted_in
    n = body.get("n", 1)
    if not wanted or (n != 1 and not allow_multiple_choices):
        return BYPASS
    ttl = None
    raw_ttl = headers.get("x-edge-cache-ttl")
    if raw_ttl is not None:
        try:
            ttl = min(max(0.0, float(raw_ttl)), max_ttl)
        except ValueError:
            ttl = None
        if ttl == 0:
            return BYPASS
    if "no-cache" in control:
        # Skip the lookup but refresh the entry with the new answer.
        return REFRESH if ttl is None else Directive(False, True, "bypass", ttl)
    return MISS if ttl is None else Directive(True, True, "miss", ttl)
