"""The edge an attacker meets: client keys, two tenants, a budget, a tokens-per-minute limit and
``pii: block``, in front of a mock that checks the provider keys. Shared by the hostile-client
e2e modules (tests/e2e/test_hostile_*.py); each starts its own edge from ``hostile_config``.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_ext.auth import hash_key
from tests.support import MockProvider, edge_config, http, start_mock, stop

OPENAI_PROVIDER_KEY = "sk-provider-openai-hostile-0001"
ANTHROPIC_PROVIDER_KEY = "sk-ant-provider-hostile-0002"
# Tenant "acme": a budget and a tokens-per-minute limit; tenant "other": a second tenant.
KEY_ACME = "sk-edge-hostile-acme-0001"
KEY_OTHER = "sk-edge-hostile-other-0002"
MESSAGES = [{"role": "user", "content": "hello"}]


def start_mocks(prefix: str) -> dict[str, MockProvider]:
    """An OpenAI and an Anthropic mock, each checking the key the edge must send it."""
    return {"openai": start_mock(f"{prefix}-openai", "--openai-key", OPENAI_PROVIDER_KEY),
            "anthropic": start_mock(f"{prefix}-anthropic", "--anthropic-key", ANTHROPIC_PROVIDER_KEY)}


def stop_mocks(mocks: dict[str, MockProvider]) -> None:
    for mock in mocks.values():
        stop(mock.proc)


def hostile_config(tmp: Path, openai_mock: MockProvider, anthropic_mock: MockProvider | None = None, **sections) -> dict:
    """An edge config with every client-facing policy on. ``sections`` override whole sections."""
    providers = [{"name": "oa", "kind": "openai", "base_url": openai_mock.url, "api_key_env": "HOSTILE_OPENAI_KEY",
                  "models": ["gpt-4o-mini", "gpt-4o"]}]
    if anthropic_mock is not None:
        providers.append({"name": "an", "kind": "anthropic", "base_url": anthropic_mock.url,
                          "api_key_env": "HOSTILE_ANTHROPIC_KEY", "models": ["claude-haiku-4-5"]})
    auth = {"keys": [
        {"id": "acme-key", "sha256": hash_key(KEY_ACME), "tenant": "acme", "tokens_per_minute": 200_000},
        {"id": "other-key", "sha256": hash_key(KEY_OTHER), "tenant": "other", "models": ["gpt-4o-mini", "claude-haiku-4-5"]},
    ], "pii": "block"}
    budgets = {"limits": [{"scope": "tenant", "id": "acme", "period": "daily", "limit_usd": 5.0}]}
    base = {"auth": auth, "budgets": budgets}
    base.update(sections)
    return edge_config(tmp, providers, **base)


def provider_env() -> dict[str, str]:
    return {"HOSTILE_OPENAI_KEY": OPENAI_PROVIDER_KEY, "HOSTILE_ANTHROPIC_KEY": ANTHROPIC_PROVIDER_KEY}


def post(url: str, body, headers: dict | None = None, key: str | None = KEY_ACME, method: str = "POST"):
    """(status, headers, parsed-or-raw body) of one request; ``body`` may be bytes or a JSON value."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        sent.setdefault("authorization", f"Bearer {key}")
    status, got, data = http(method, url, raw, sent)
    try:
        return status, got, json.loads(data)
    except ValueError:
        return status, got, data
