"""The semantic cache through real Envoy, with the official SDKs as clients, the mock's embeddings
API, and a shared tier whose Redis is down (each worker's own index answers).

One worker: its index is the one every request meets, so a paraphrase of a stored prompt is a hit
on the first try. (Workers share entries only through a Redis with vector search: that tier runs
against one in tests/unit/test_semantic_shared.py.)
"""

import anthropic
import openai
import pytest

from edge_ext.auth import hash_key
from edge_ext.mock.vectors import embed
from edge_ext.semantic.guard import same_meaning_marks
from tests.redis_server import RedisServer
from tests.support import edge_config, scrape_until, start_edge, start_mock, stop

KEY_A, KEY_B, KEY_OFF = "sk-semantic-a-1111", "sk-semantic-b-2222", "sk-semantic-off-3333"
QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me the capital city of France"


@pytest.fixture(scope="module")
def mock():
    started = start_mock("semantic-mock")
    yield started
    stop(started.proc)


@pytest.fixture(autouse=True)
def clean(mock):
    mock.clear()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("semantic")
    down = RedisServer()  # a port nothing listens on once stopped: the shared tier is down
    down.start()
    down.stop()
    providers = [{"name": "openai-main", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini", "gpt-4o"]},
                 {"name": "claude", "kind": "anthropic", "base_url": mock.url, "models": ["claude-sonnet-4-6"]}]
    keys = [{"id": "a", "sha256": hash_key(KEY_A), "tenant": "tenant-a"},
            {"id": "b", "sha256": hash_key(KEY_B), "tenant": "tenant-b"},
            {"id": "off", "sha256": hash_key(KEY_OFF), "tenant": "tenant-a"}]
    semantic = {"enabled": True, "models": {"gpt-4o-mini": {}, "claude-sonnet-4-6": {}}, "keys": ["a", "b"],
                "embedding": {"provider": "openai-main"}}
    config = edge_config(tmp, providers, processor={"workers": 1}, auth={"keys": keys}, redis={"url": down.url},
                         cache={"policy": "always", "semantic": semantic})
    running = start_edge(tmp, config)
    yield running
    down.cleanup()
    assert stop(running.proc) == 0, running.log()


def ask(edge, text, key=KEY_A, **kw):
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("temperature", 0)
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(messages=[{"role": "user", "content": text}], **kw)


def chat_calls(mock) -> int:
    return len([r for r in mock.requests() if r["path"] == "/v1/chat/completions"])


def embedding_calls(mock) -> int:
    return len([r for r in mock.requests() if r["path"] == "/v1/embeddings"])


def stored(edge, text, **kw) -> str:
    first = ask(edge, text, **kw)
    assert first.headers["x-edge-cache"] == "miss", first.headers
    return first.parse().choices[0].message.content


def test_a_paraphrase_hits_with_its_similarity(edge, mock):
    answer = stored(edge, QUESTION)
    hit = ask(edge, PARAPHRASE)
    assert hit.headers["x-edge-cache"] == "hit-semantic"
    assert float(hit.headers["x-edge-cache-similarity"]) >= 0.92
    assert hit.headers["x-edge-attempts"] == "0"
    assert hit.parse().choices[0].message.content == answer
    assert chat_calls(mock) == 1 and embedding_calls(mock) == 2


def test_the_same_paraphrase_from_another_tenant_misses(edge, mock):
    stored(edge, "How does a car engine work?")
    assert ask(edge, "Explain how an automobile engine works.", key=KEY_B).headers["x-edge-cache"] == "miss"
    assert ask(edge, "Explain how an automobile engine works.", key=KEY_A).headers["x-edge-cache"] == "hit-semantic"


def test_a_key_not_opted_in_makes_no_embedding_call(edge, mock):
    stored(edge, "Who wrote Hamlet?")
    before = embedding_calls(mock)
    assert ask(edge, "Who is the author of Hamlet?", key=KEY_OFF).headers["x-edge-cache"] == "miss"
    assert embedding_calls(mock) == before


def test_a_negated_question_misses(edge, mock):
    question, negated = "Is coffee bad for your health?", "Is coffee not bad for your health?"
    assert sum(x * y for x, y in zip(embed(question), embed(negated))) >= 0.92
    assert not same_meaning_marks(question, negated)  # the guard, not the similarity, refuses it
    stored(edge, question)
    assert ask(edge, negated).headers["x-edge-cache"] == "miss"
    assert chat_calls(mock) == 2


def test_a_different_number_misses(edge, mock):
    stored(edge, "Convert 10 miles to kilometres")
    assert ask(edge, "Convert 100 miles to kilometres").headers["x-edge-cache"] == "miss"


def test_a_different_temperature_misses(edge, mock):
    stored(edge, "Why is the sky blue?")
    assert ask(edge, "Why is the sky blue? Please explain.", temperature=0.5).headers["x-edge-cache"] == "miss"
    assert ask(edge, "Why is the sky blue? Please explain.").headers["x-edge-cache"] == "hit-semantic"


def test_a_streamed_paraphrase_gets_a_replayed_stream(edge, mock):
    answer = stored(edge, "How do I bake bread?")
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY_A, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Can you tell me how to bake bread?"}])
    assert raw.headers["x-edge-cache"] == "hit-semantic" and raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert chunks[-1].usage is not None
    assert chat_calls(mock) == 1


def test_anthropic_clients_get_semantic_hits_in_their_shape(edge, mock):
    client = anthropic.Anthropic(base_url=edge.url, api_key=KEY_A, max_retries=0)
    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=50,
                                   messages=[{"role": "user", "content": "What is the largest ocean?"}])
    raw = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=50,
                                                   messages=[{"role": "user", "content": "Which ocean is the biggest?"}])
    assert raw.headers["x-edge-cache"] == "hit-semantic"
    assert raw.parse().content[0].text == first.content[0].text


@pytest.mark.parametrize("fault", [{"latency_ms": 1500}, {"status": 500}], ids=["slow", "failing"])
def test_embedding_provider_slow_or_down_the_request_and_exact_cache_still_work(edge, mock, fault):
    text = f"embedding trouble {fault}"
    mock.faults(path="/v1/embeddings", count=-1, **fault)
    try:
        first = ask(edge, text)
        assert first.headers["x-edge-cache"] == "miss" and first.parse().choices[0].message.content
        assert ask(edge, text).headers["x-edge-cache"] == "hit-l1"
    finally:
        mock.clear()
    scrape_until(edge, 'edge_ext_store_errors_total{store="openai-main",use="embeddings"}',
                 'edge_ext_semantic_lookups_total{result="no_embedding"}')


def test_redis_down_the_local_index_still_answers(edge, mock):
    stored(edge, "Where is the Eiffel Tower located?")
    assert ask(edge, "Where is the Eiffel Tower?").headers["x-edge-cache"] == "hit-semantic"
    scrape_until(edge, 'edge_ext_store_errors_total{store="redis",use="semantic"}')


def test_metrics_and_the_embedding_cost_charged_to_the_tenant(edge, mock):
    stored(edge, "What does API mean?")
    ask(edge, "What is the meaning of API?")
    scrape_until(edge, 'edge_ext_semantic_lookups_total{result="hit"}', "edge_ext_semantic_similarity_bucket",
                 "edge_ext_embedding_seconds_bucket", 'edge_ext_embedding_tokens_total{model="text-embedding-3-small"}',
                 'edge_ext_embedding_cost_usd_total{model="text-embedding-3-small",tenant="tenant-a"}')


def test_admin_purge_by_tenant_and_model(edge, mock):
    from edge_ext.admin.pb import admin_pb2 as pb

    stored(edge, "Define entropy")
    assert ask(edge, "What is the definition of entropy?").headers["x-edge-cache"] == "hit-semantic"
    with edge.admin_client() as admin:
        other = admin.PurgeSemantic(pb.PurgeSemanticRequest(tenant="tenant-a", model="gpt-4o"))
        mine = admin.PurgeSemantic(pb.PurgeSemanticRequest(tenant="tenant-a", model="gpt-4o-mini"))
    assert other.enabled and other.local_removed == 0
    assert mine.local_removed >= 1
    assert "connect" in mine.shared_error.lower()  # the shared tier's Redis is down: said, not fatal
    assert ask(edge, "What is the meaning of entropy?").headers["x-edge-cache"] == "miss"


def test_admin_command_purges_every_worker(edge, mock):
    import json
    import subprocess
    import sys

    stored(edge, "Recommend a good sci-fi movie")
    out = subprocess.run([sys.executable, "-m", "edge_ext.cli", "admin", "--config", str(edge.config_path), "purge-semantic",
                          "--tenant", "tenant-a"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    replies = json.loads(out.stdout)
    assert len(replies) == 1 and int(replies[0]["local_removed"]) >= 1
    assert ask(edge, "Recommend a good sci-fi film").headers["x-edge-cache"] == "miss"
