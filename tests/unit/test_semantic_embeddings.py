"""The mock's embeddings API (through the official SDK), the embeddings client against it
(OpenAI, OpenAI-compatible and Azure shapes, slow and failing), and the semantic cache on the
worker's own index."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from edge_ext.cache.entry import Entry
from edge_ext.config.models import Provider
from edge_ext.config.semantic import Embedding, Semantic
from edge_ext.mock import MockSettings, start_mock
from edge_ext.mock.vectors import DEFAULT_DIMS
from edge_ext.semantic.cache import SemanticCache
from edge_ext.semantic.embeddings import EmbeddingClient
from edge_ext.semantic.index import LocalIndex
from edge_ext.semantic.prompt import Prompt

KEY = "sk-test-embeddings-0123"


@pytest.fixture
async def mock():
    handle = await start_mock(MockSettings(port=0, name="emb", openai_key=KEY, azure_key=KEY))
    yield handle
    await handle.stop()


def provider(mock, kind: str = "openai", **extra) -> Provider:
    return Provider(name="emb", kind=kind, base_url=mock.url, api_key_env="EMB_KEY", models=["gpt-4o-mini"], **extra)


async def test_sdk_reads_float_and_base64_vectors(mock):
    client = openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key=KEY, max_retries=0)
    try:
        default = await client.embeddings.create(model="text-embedding-3-small", input="What is the capital of France?")
        floats = await client.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog"],
                                                encoding_format="float", dimensions=64)
    finally:
        await client.close()
    assert len(default.data[0].embedding) == DEFAULT_DIMS
    assert np.linalg.norm(default.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert [len(d.embedding) for d in floats.data] == [64, 64] and floats.usage.prompt_tokens == 4


async def test_azure_sdk_embeddings(mock):
    client = openai.AsyncAzureOpenAI(azure_endpoint=mock.url, api_key=KEY, api_version="2024-10-21", max_retries=0)
    try:
        answer = await client.embeddings.create(model="my-embedding-deployment", input="hello there")
    finally:
        await client.close()
    assert answer.model == "my-embedding-deployment" and len(answer.data[0].embedding) == DEFAULT_DIMS


@pytest.mark.parametrize("body, param", [
    ({"model": "m"}, "input"), ({"model": "m", "input": []}, "input"), ({"model": "m", "input": [1, 2]}, "input"),
    ({"input": "x"}, "model"), ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
    ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
])
async def test_mock_refuses_bad_requests_like_openai(mock, body, param):
    client = openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            await client.post("/embeddings", body=body, cast_to=object)
    finally:
        await client.close()
    assert err.value.body["param"] == param


@pytest.mark.parametrize("kind, extra", [("openai", {}), ("openai_compatible", {}),
                                         ("azure_openai", {"api_version": "2024-10-21"})])
async def test_client_speaks_each_provider_shape(mock, monkeypatch, kind, extra):
    client = EmbeddingClient(provider(mock, kind, **extra), KEY, Embedding(provider="emb"))
    try:
        got = await client.embed("What is the capital of France?")
    finally:
        await client.aclose()
    assert got is not None and got.vector.shape == (DEFAULT_DIMS,) and got.input_tokens == 6 and not client.health.errors
    seen = mock.state.recorder.list()[-1]
    assert seen["path"].endswith("/embeddings")
    assert (seen["headers"].get("api-key") if kind == "azure_openai" else seen["headers"]["authorization"]) in (KEY, f"Bearer {KEY}")


@pytest.mark.parametrize("fault, key", [
    ({"latency_ms": 1500}, KEY),  # slower than the client's timeout
    ({"status": 500}, KEY),
    ({"drop": "before-response"}, KEY),
    ({}, "wrong-key"),  # 401
])
async def test_slow_or_failing_embedding_is_a_miss(mock, fault, key):
    if fault:
        mock.state.faults.add({**fault, "path": "/v1/embeddings"})
    client = EmbeddingClient(provider(mock), key, Embedding(provider="emb", timeout_ms=300))
    try:
        assert await client.embed("hello") is None
        assert client.health.failing and client.health.errors == 1
        mock.state.faults.clear()
        if key == KEY:  # the provider is back: the next embedding works and the failure is over
            assert await client.embed("hello") is not None and not client.health.failing
    finally:
        await client.aclose()


async def test_unreachable_embedding_server_is_a_miss():
    from tests.support import free_port

    dead = Provider(name="emb", kind="openai", base_url=f"http://127.0.0.1:{free_port()}", models=["m"])
    client = EmbeddingClient(dead, None, Embedding(provider="emb"))
    try:
        assert await client.embed("hello") is None
    finally:
        await client.aclose()
    assert client.health.errors == 1


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


async def test_semantic_cache_on_the_local_index(mock):
    config = Semantic(enabled=True, models={"gpt-4o-mini": {}}, keys="*", embedding=Embedding(provider="emb"))
    lookups = []
    cache = SemanticCache(config, EmbeddingClient(provider(mock), KEY, config.embedding),
                          LocalIndex(100, 10 ** 8, 60, Clock()), None, on_lookup=lambda r, s: lookups.append(r))
    answer = Entry(b'{"choices":[]}', 0.0, "openai", "mock")
    try:
        first = await cache.lookup(Prompt("user: What is the capital of France?", "p1"), 0.92)
        assert first.entry is None and first.embedded is not None
        cache.store(Prompt("user: What is the capital of France?", "p1"), first.embedded.vector, answer, "t-a", "gpt-4o-mini", None)
        hit = await cache.lookup(Prompt("user: Tell me the capital city of France", "p1"), 0.92)
        assert hit.entry == answer and hit.tier == "local" and hit.similarity >= 0.92
        negated = await cache.lookup(Prompt("user: What is not the capital of France?", "p1"), 0.92)
        assert negated.entry is None and negated.similarity >= 0.92, "close by similarity: the guard refuses it"
        elsewhere = await cache.lookup(Prompt("user: Tell me the capital city of France", "p2"), 0.92)
        assert elsewhere.entry is None and elsewhere.similarity is None
        assert await cache.purge("t-a", "gpt-4o-mini") == (1, 0, "")
        assert (await cache.lookup(Prompt("user: Tell me the capital city of France", "p1"), 0.92)).entry is None
    finally:
        await cache.aclose()
    assert lookups == ["miss", "hit", "miss", "miss", "miss"]
