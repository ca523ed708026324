"""A failover attempt's proof that an authenticated request started it.

The attempt filter on a failover cluster answers with a provider's credentials. Its stream
carries no client key: it only learns from the request's forwarded metadata which request it
retries. So the router-level step, after auth and validation, signs what the attempt will rely
on (first provider, public model, plan) and the attempt step answers only a plan it can verify,
for a provider in that plan. A peer that reaches a worker socket without Envoy cannot mint one.

The signing key is derived from the provider credentials: every worker and replica that can
answer an attempt holds them, no new secret needs distributing, and a peer that knows them has
nothing left to steal. With keyless providers the key is public, and the private socket
directory (or mTLS) is the only door (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


class AttemptGrants:
    def __init__(self, provider_keys: Mapping[str, str | None]):
        material = b"\0".join(f"{name}={provider_keys[name] or ''}".encode() for name in sorted(provider_keys))
        self._key = hashlib.sha256(b"edge-ext attempt grant v1\0" + material).digest()

    def _sign(self, first: str, model: str, plan: str) -> str:
        return hmac.new(self._key, f"{first}\n{model}\n{plan}".encode(), hashlib.sha256).hexdigest()

    def metadata(self, first: str, model: str, plan: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """What the router-level step adds to the request's metadata for a plan with fallbacks."""
        joined = ",".join(plan)
        return (("plan", joined), ("grant", self._sign(first, model, joined)))

    def allows(self, route: Mapping[str, str], provider: str) -> bool:
        """Whether ``route`` (the forwarded metadata) was signed here and plans ``provider``."""
        plan, grant = route.get("plan", ""), route.get("grant", "")
        if not grant or provider not in plan.split(","):
            return False
        expected = self._sign(route.get("provider", ""), route.get("model", ""), plan)
        return hmac.compare_digest(expected, grant)
