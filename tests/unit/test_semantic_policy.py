"""The semantic step inside the policy: after an exact miss, a paraphrase is answered from the
stored answer (JSON or replayed SSE) with its similarity; other tenants, negations, other
parameters and callers not opted in are not. Embeddings come from the mock's vector function
(a working fake: no HTTP here; the client is tested against the mock server elsewhere)."""

from __future__ import annotations

import json

import pytest

from edge_ext.auth import hash_key
from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.tiered import TieredCache
from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.mock.vectors import embed
from edge_ext.policy.accounting import Accounting
from edge_ext.driver import Driver
from edge_ext.policy.decisions import Continue, Respond
from edge_ext.policy.engine import Policy
from edge_ext.policy.semantic import SemanticStep
from edge_ext.semantic.cache import SemanticCache
from edge_ext.semantic.embeddings import Embedded
from edge_ext.semantic.index import LocalIndex, unit
from edge_ext.cost.pricing import load_pricing

CONFIG = f"""\
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:18080", models: [gpt-4o-mini, gpt-4o]}}
auth:
  keys:
    - {{id: alice, sha256: "{hash_key('key-alice')}", tenant: acme}}
    - {{id: bob, sha256: "{hash_key('key-bob')}", tenant: globex}}
    - {{id: carol, sha256: "{hash_key('key-carol')}", tenant: acme}}
cache:
  semantic:
    enabled: true
    models: {{gpt-4o-mini: {{}}}}
    keys: [alice, bob]
    embedding: {{provider: oa}}
"""


class MockVectors:
    provider, model = "oa", "text-embedding-3-small"

    def __init__(self):
        self.calls = 0

    async def embed(self, text: str) -> Embedded | None:
        self.calls += 1
        return Embedded(unit(embed(text)), len(text.split()), 0.001)


@pytest.fixture
def setup():
    return build(parse_config(CONFIG))


def build(config, budgets=None):
    clock = FakeClock()
    embedder = MockVectors()
    semantic_cache = SemanticCache(config.cache.semantic, embedder, LocalIndex(100, 10 ** 8, 600, clock), None)
    accounting = Accounting(load_pricing())
    charged = []
    step = SemanticStep(config.cache.semantic, (embedder.provider, embedder.model), None, accounting, 0.5,
                        on_embedding=lambda *a: charged.append(a))
    cache = TieredCache(MemoryCache(100, 10 ** 7, clock), None, 60, 60)
    policy = Policy(config, clock, {"oa": "sk"}, wall=lambda: 1.7e9, cache=True, accounting=accounting, semantic=step,
                    budgets=budgets is not None)
    return Driver(policy, config, cache=cache, budgets=budgets, semantic=semantic_cache), embedder, charged


def body(text: str, **extra) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}],
                       **extra}).encode()


ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}


async def ask(driver: Driver, key: str, payload: bytes, answer: dict | None = None):
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {key}"}, False)
    decision = await driver.run(st, policy.on_request_body(st, payload))
    if isinstance(decision, Continue) and answer is not None:
        policy.on_response_headers(st, 200, {":status": "200", "content-type": "application/json"})
        policy.on_response_body(st, json.dumps(answer).encode(), True)
        driver.run_effects(st)
    driver.end(st)
    return decision


def served(decision) -> str:
    if isinstance(decision, Respond):
        return dict(decision.headers).get("x-edge-cache", "")
    return "routed"


async def test_a_paraphrase_is_answered_with_its_similarity(setup):
    policy, embedder, charged = setup
    assert served(await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)) == "routed"
    hit = await ask(policy, "key-alice", body("Tell me the capital city of France"))
    assert served(hit) == "hit-semantic" and json.loads(hit.body)["choices"][0]["message"]["content"] == "Paris."
    assert float(dict(hit.headers)["x-edge-cache-similarity"]) >= 0.92
    assert embedder.calls == 2
    model, tenant, _, tokens, usd = charged[-1]
    assert (model, tenant) == ("text-embedding-3-small", "acme") and tokens > 0 and usd > 0


async def test_a_streamed_paraphrase_gets_a_replayed_stream(setup):
    policy, _, _ = setup
    await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)
    hit = await ask(policy, "key-alice", body("Which city is the capital of France?", stream=True))
    assert served(hit) == "hit-semantic" and ("content-type", "text/event-stream") in hit.headers
    assert b"Paris." in hit.body and hit.body.rstrip().endswith(b"data: [DONE]")


@pytest.mark.parametrize("key, payload, why", [
    ("key-bob", body("Tell me the capital city of France"), "another tenant"),
    ("key-alice", body("What is not the capital of France?"), "a negation"),
    ("key-alice", body("Tell me the capital city of France", temperature=0.5, top_p=1), "other sampling parameters"),
    ("key-alice", body("Tell me the capital city of France", model="gpt-4o"), "a model group not opted in"),
    ("key-carol", body("Tell me the capital city of France"), "a key not opted in (same tenant)"),
])
async def test_no_semantic_hit_across_partitions_or_meanings(setup, key, payload, why):
    policy, _, _ = setup
    await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)
    assert served(await ask(policy, key, payload, ANSWER)) == "routed", why


async def test_an_exact_hit_needs_no_embedding(setup):
    policy, embedder, _ = setup
    await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)
    assert served(await ask(policy, "key-alice", body("What is the capital of France?"))) == "hit-l1"
    assert embedder.calls == 1


async def test_a_failed_embedding_routes_the_request(setup):
    policy, embedder, _ = setup

    async def down(text):
        return None

    embedder.embed = down
    assert served(await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)) == "routed"
    assert served(await ask(policy, "key-alice", body("What is the capital of France?"))) == "hit-l1"


def test_budgets_settle_the_answer_plus_the_embedding():
    from decimal import Decimal

    from edge_ext.cost.calc import CostResult
    from edge_ext.policy.accounting import Charge, with_embedding
    from edge_ext.usage import Usage

    answer = Charge(Usage(input_tokens=10, output_tokens=5), CostResult(Decimal("0.001"), True))
    embedding = Charge(Usage(input_tokens=8), CostResult(Decimal("0.00002"), True))
    both = with_embedding(answer, embedding)
    assert both.cost.usd == Decimal("0.00102") and both.usage.total == 23
    assert with_embedding(None, embedding) is embedding and with_embedding(answer, None) is answer
    unpriced = Charge(Usage(input_tokens=8), CostResult.unpriced())
    assert with_embedding(answer, unpriced).cost.usd == Decimal("0.001")


def with_budget(tmp_path):
    """The driver (which performs admissions and settlements), its budgets and the embedding
    charges, with a budget for tenant acme in a disk ledger."""
    from edge_ext.metrics import WorkerMetrics
    from edge_ext.wiring import build_budgets

    config = parse_config(CONFIG + f"""\
budgets:
  local_dir: {tmp_path}
  limits: [{{scope: tenant, id: acme, period: total, limit_usd: 10}}]
""")
    budgets, _ = build_budgets(config, WorkerMetrics())
    driver, _, charged = build(config, budgets)
    return driver, budgets, charged


async def test_a_semantic_hit_charges_its_embedding_to_the_tenant_budget(tmp_path):
    from decimal import Decimal

    from edge_ext.cost.ledger_api import from_micros, to_micros

    policy, budgets, charged = with_budget(tmp_path)
    await ask(policy, "key-alice", body("What is the capital of France?"), ANSWER)
    await budgets.flush()
    (_, _, before, _), = await budgets.status("tenant", "acme")
    assert served(await ask(policy, "key-alice", body("Tell me the capital city of France"))) == "hit-semantic"
    await budgets.flush()
    (_, _, after, _), = await budgets.status("tenant", "acme")
    # The ledger counts whole micro-dollars, each amount rounded up.
    assert charged[-1][4] > 0 and after - before == from_micros(to_micros(Decimal(str(charged[-1][4]))))


async def test_a_request_refused_after_its_lookup_is_charged_its_embedding(tmp_path):
    from edge_ext.routing.breaker import BreakerState

    driver, budgets, charged = with_budget(tmp_path)
    driver.policy.router.force("oa", BreakerState.OPEN)  # no provider may serve it after the miss
    refused = await ask(driver, "key-alice", body("What is the capital of France?"))
    assert isinstance(refused, Respond) and refused.status == 503 and len(charged) == 1
    # Released before the refusal was sent, with the embedding call charged, not dropped.
    (_, _, spent, _), = await budgets.status("tenant", "acme")
    assert spent > 0
