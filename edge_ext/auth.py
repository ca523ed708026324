"""Client keys: who is calling, for which tenant, allowed which models.

The config holds SHA-256 digests of client keys, never the keys (``edge-ext hash-key`` makes
one). A presented key is hashed and looked up; the digests are compared with
``hmac.compare_digest`` so a lookup leaks nothing about how close a wrong key came.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from edge_ext.errors import Forbidden, MissingKey


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    tenant: str
    models: frozenset[str]  # empty: every model
    pii: str | None = None  # prompt PII policy of this key; None: the default
    def check_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise Forbidden(f"key '{self.key_id}' may not use model '{model}'")


ANONYMOUS = Caller("anonymous", "anonymous", frozenset())


def presented_key(headers: dict[str, str]) -> str | None:
    """Both client styles: OpenAI's Authorization: Bearer and Anthropic's x-api-key."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


class KeyRing:
    def __init__(self, entries: dict[str, Caller]):
        self._entries = {digest.lower(): (digest.lower(), caller) for digest, caller in entries.items()}

    @staticmethod
    def digest(headers: dict[str, str]) -> str:
        key = presented_key(headers)
        if key is None:
            raise MissingKey("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        return hash_key(key)

    def local(self, digest: str) -> Caller | None:
        stored, caller = self._entries.get(digest, ("", ANONYMOUS))
        return caller if hmac.compare_digest(digest, stored) else None
