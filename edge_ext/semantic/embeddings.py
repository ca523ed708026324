"""The embeddings client: OpenAI's /v1/embeddings, any OpenAI-compatible server (vLLM, TEI,
Ollama, the bundled mock) and Azure OpenAI.

The processor calls it directly (not through Envoy): it is part of the lookup. It has its own
timeout, and a slow, failing or unreadable embedding is a miss, never an error for the request.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from edge_ext.config.models import Provider
from edge_ext.config.semantic import Embedding as EmbeddingConfig
from edge_ext.health import StoreHealth
from edge_ext.semantic.index import unit

_MAX_ANSWER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Embedded:
    vector: np.ndarray  # unit length, float32
    input_tokens: int  # as the server reported them (0 when it did not)
    seconds: float


class EmbeddingFailed(Exception):
    """The embedding could not be had; the lookup is a miss."""


def endpoint(provider: Provider, key: str | None, config: EmbeddingConfig) -> tuple[str, dict[str, str], dict]:
    """URL, headers and JSON body (without ``input``) of the provider's embeddings API."""
    body: dict = {"model": config.model, "encoding_format": "float"}
    if config.dimensions is not None:
        body["dimensions"] = config.dimensions
    headers = {"content-type": "application/json"}
    if provider.kind == "azure_openai":
        url = (f"{provider.base_url}/openai/deployments/{quote(config.model, safe='')}/embeddings"
               f"?api-version={quote(provider.api_version or '', safe='')}")
        if key:
            headers["api-key"] = key
    else:
        url = f"{provider.base_url}/v1/embeddings"
        if key:
            headers["authorization"] = f"Bearer {key}"
    return url, headers, body


class EmbeddingClient:
    def __init__(self, provider: Provider, key: str | None, config: EmbeddingConfig, health: StoreHealth | None = None):
        self.provider, self.model = provider.name, config.model
        self._url, self._headers, self._body = endpoint(provider, key, config)
        self._timeout_s = config.timeout_ms / 1000
        self._connect_timeout_s = provider.connect_timeout_s
        self.health = health or StoreHealth("embeddings", provider.name)
        self._session = None

    async def start(self) -> None:
        import aiohttp

        # Connections are kept open: the call sits on the request path of every opted-in miss.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def embed(self, text: str) -> Embedded | None:
        started = time.perf_counter()
        try:
            if self._session is None:
                await self.start()
            raw = await asyncio.wait_for(self._post(text), self._timeout_s)
            vector, tokens = parse(raw)
        except asyncio.TimeoutError:
            self.health.failed(EmbeddingFailed(f"no answer within {self._timeout_s:g}s"))
            return None
        except EmbeddingFailed as exc:
            self.health.failed(exc)
            return None
        self.health.ok()
        return Embedded(vector, tokens, time.perf_counter() - started)

    async def _post(self, text: str) -> bytes:
        import aiohttp

        try:
            async with self._session.post(self._url, json={**self._body, "input": text}, headers=self._headers) as reply:
                data = await reply.content.read(_MAX_ANSWER_BYTES + 1)
                if reply.status != 200:
                    raise EmbeddingFailed(f"HTTP {reply.status}")
                return data
        except aiohttp.ClientError as exc:
            raise EmbeddingFailed(f"{type(exc).__name__}: {exc}") from exc


def parse(raw: bytes) -> tuple[np.ndarray, int]:
    """The first vector and the prompt tokens of an embeddings answer."""
    if len(raw) > _MAX_ANSWER_BYTES:
        raise EmbeddingFailed("embedding answer too large")
    try:
        answer = json.loads(raw)
        vector = unit(answer["data"][0]["embedding"])
        usage = answer.get("usage") or {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens", 0))
        tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else 0
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise EmbeddingFailed(f"embedding answer unreadable: {type(exc).__name__}") from exc
    if vector is None:
        raise EmbeddingFailed("embedding answer holds no usable vector")
    return vector, tokens
