"""The semantic cache's parts without I/O: config, what is embedded and the partition, the
negation/number guard, the worker's index."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_ext.cache.entry import Entry
from edge_ext.config.models import Config
from edge_ext.config.semantic import DEFAULT_THRESHOLD, Semantic
from edge_ext.semantic.guard import same_meaning_marks
from edge_ext.semantic.index import LocalIndex, Record, unit
from edge_ext.semantic.prompt import conversation_text, partition_key

PROVIDERS = [{"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:1", "models": ["gpt-4o-mini"]},
             {"name": "an", "kind": "anthropic", "base_url": "http://127.0.0.1:2", "models": ["claude-haiku-4-5"]}]
KEYS = {"keys": [{"id": "alice", "sha256": "a" * 64, "tenant": "acme"}]}
ON = {"enabled": True, "models": {"gpt-4o-mini": {}}, "keys": ["alice"], "embedding": {"provider": "oa"}}


def config(semantic: dict, auth: dict = KEYS, cache: dict | None = None) -> Config:
    return Config.model_validate({"providers": PROVIDERS, "auth": auth, "cache": {**(cache or {}), "semantic": semantic}})


# -- config -------------------------------------------------------------------------------

def test_off_by_default():
    assert Config.model_validate({"providers": PROVIDERS}).cache.semantic.enabled is False


def test_thresholds_per_model_group_and_opt_in_per_key():
    s = config({**ON, "models": {"gpt-4o-mini": {"threshold": 0.97}}}).cache.semantic
    assert s.threshold_for("gpt-4o-mini") == 0.97
    assert s.threshold_for("claude-haiku-4-5") is None
    assert config(ON).cache.semantic.threshold_for("gpt-4o-mini") == DEFAULT_THRESHOLD
    assert s.opted_in("alice") and not s.opted_in("bob")
    assert config({**ON, "keys": "*"}, auth={}).cache.semantic.opted_in("anonymous")


@pytest.mark.parametrize("semantic, auth, cache, names", [
    ({**ON, "bogus": 1}, KEYS, None, "bogus"),
    ({**ON, "embedding": {"provider": "oa", "timeout": 1}}, KEYS, None, "timeout"),
    ({**ON, "embedding": {"provider": "nope"}}, KEYS, None, "no provider named 'nope'"),
    ({**ON, "embedding": {"provider": "an"}}, KEYS, None, "no embeddings API"),
    ({**ON, "models": {"gpt-9": {}}}, KEYS, None, "no provider serves ['gpt-9']"),
    ({**ON, "keys": ["bob"]}, KEYS, None, "no client key has the id ['bob']"),
    ({**ON, "embedding": None}, KEYS, None, "needs semantic.embedding"),
    ({**ON, "models": {}}, KEYS, None, "needs semantic.models"),
    ({**ON, "keys": []}, KEYS, None, "needs semantic.keys"),
    ({**ON, "threshold": 0.3}, KEYS, None, "threshold"),
    (ON, KEYS, {"enabled": False}, "needs cache.enabled"),
])
def test_bad_config_fails_naming_the_key(semantic, auth, cache, names):
    with pytest.raises(ValidationError) as err:
        config(semantic, auth, cache)
    assert names in str(err.value)


def test_frozen():
    with pytest.raises(ValidationError):
        Semantic().enabled = True  # type: ignore[misc]


# -- what is embedded, and the partition ----------------------------------------------------

BASE = {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "What is the capital of France?"}]}


def test_the_conversation_is_embedded_with_roles():
    assert conversation_text(BASE, 8, 4000) == "system: Be brief.\nuser: What is the capital of France?"
    anthropic = {"system": [{"type": "text", "text": "Be brief."}],
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert conversation_text(anthropic, 8, 4000) == "system: Be brief.\nuser: Hi"


@pytest.mark.parametrize("body, why", [
    ({**BASE, "messages": BASE["messages"] * 5}, "more messages than the bound"),
    ({**BASE, "messages": [{"role": "user", "content": "x" * 5000}]}, "more characters than the bound"),
    ({**BASE, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
     "an image: its meaning is not in the text"),
    ({**BASE, "messages": []}, "no conversation"),
])
def test_conversations_left_to_the_exact_cache(body, why):
    assert conversation_text(body, 8, 4000) is None, why


@pytest.mark.parametrize("change", [
    {"temperature": 0.7}, {"top_p": 0.5}, {"max_tokens": 10}, {"n": 2}, {"seed": 1}, {"model": "gpt-4o"},
    {"tools": [{"type": "function", "function": {"name": "f"}}]}, {"tool_choice": "none"},
    {"response_format": {"type": "json_object"}}, {"stop": ["\n"]},
])
def test_everything_but_the_conversation_is_an_exact_partition(change):
    assert partition_key("t-acme", "openai", BASE) != partition_key("t-acme", "openai", {**BASE, **change})


def test_partition_separates_tenants_apis_and_betas_but_not_delivery_or_wording():
    key = partition_key("t-acme", "openai", BASE)
    assert key != partition_key("t-other", "openai", BASE)
    assert key != partition_key("t-acme", "anthropic", BASE)
    assert key != partition_key("t-acme", "openai", BASE, (("anthropic-beta", "x"),))
    reworded = {**BASE, "messages": [{"role": "user", "content": "Tell me France's capital"}]}
    assert key == partition_key("t-acme", "openai", {**reworded, "stream": True, "user": "u1"})


# -- the guard ------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, same", [
    ("What is the capital of France?", "Tell me France's capital city", True),
    ("Is coffee bad for you?", "Is coffee not bad for you?", False),
    ("Is coffee bad for you?", "Isn't coffee bad for you?", False),
    ("Can I swim after eating?", "I can never swim after eating?", False),
    ("Isn't it raining?", "Is it not raining?", True),
    ("What is 2 + 2?", "What is 2 + 3?", False),
    ("List three fruits", "List 3 fruits", True),
    ("List three fruits", "List four fruits", False),
    ("Convert 1,000 dollars", "Convert 1000 dollars", True),
    ("Convert 1.5 km to miles", "Convert 15 km to miles", False),
    ("Summarise in 2 lines", "Summarise in two lines", True),
])
def test_guard_refuses_a_changed_negation_or_number(a, b, same):
    assert same_meaning_marks(a, b) is same


# -- the index ------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def vec(*values: float) -> np.ndarray:
    return unit(values)


def record(partition: str = "p", text: str = "q", body: bytes = b"{}", tenant: str = "t-a", model: str = "m") -> Record:
    return Record(partition, text, Entry(body, 0.0, "openai", "oa"), tenant, model)


def test_search_is_confined_to_the_partition_and_ranked():
    index = LocalIndex(100, 10 ** 8, 60, Clock())
    index.add(vec(1, 0, 0), record("p", "near"))
    index.add(vec(1, 1, 0), record("p", "far"))
    index.add(vec(1, 0, 0), record("other", "elsewhere"))
    matches = index.search("p", vec(1, 0.05, 0))
    assert [m.record.text for m in matches] == ["near", "far"]
    assert matches[0].similarity == pytest.approx(0.99875, abs=1e-3)
    assert index.search("nowhere", vec(1, 0, 0)) == []


def test_entries_expire():
    clock = Clock()
    index = LocalIndex(100, 10 ** 8, 60, clock)
    index.add(vec(1, 0), record(text="short"), ttl_s=5)
    index.add(vec(0, 1), record(text="long"))
    clock.now += 10
    assert [m.record.text for m in index.search("p", vec(1, 0))] == ["long"]
    assert len(index) == 1
    clock.now += 60
    assert index.search("p", vec(1, 0)) == [] and len(index) == 0 and index.bytes == 0


def test_bounded_by_entries_least_recently_used_first():
    evicted = []
    index = LocalIndex(2, 10 ** 8, 60, Clock(), on_evict=lambda: evicted.append(1))
    index.add(vec(1, 0), record(text="a"))
    index.add(vec(0, 1), record(text="b"))
    index.search("p", vec(1, 0), 1)  # a is used: b is now the oldest
    index.add(vec(1, 1), record(text="c"))
    assert sorted(m.record.text for m in index.search("p", vec(1, 0))) == ["a", "c"] and evicted == [1]


def test_bounded_by_bytes_counting_partitions():
    index = LocalIndex(1000, 200_000, 60, Clock())
    for i in range(20):
        index.add(vec(1, i), record(partition=f"p{i}", body=b"x" * 1000))
    assert index.bytes <= 200_000 and 0 < len(index) < 20
    index.add(vec(1, 0), record(body=b"x" * 300_000))  # larger than the whole index: not kept
    assert index.bytes <= 200_000


def test_a_new_vector_size_replaces_the_partition():
    index = LocalIndex(100, 10 ** 8, 60, Clock())
    index.add(vec(1, 0), record(text="old"))
    index.add(vec(1, 0, 0), record(text="new"))
    assert [m.record.text for m in index.search("p", vec(1, 0, 0))] == ["new"] and len(index) == 1


def test_purge_by_tenant_and_model():
    index = LocalIndex(100, 10 ** 8, 60, Clock())
    for tenant in ("t-a", "t-b"):
        for model in ("m1", "m2"):
            index.add(vec(1, 0), record(partition=tenant + model, tenant=tenant, model=model))
    assert index.purge("t-a", "m1") == 1 and len(index) == 3
    assert index.purge("t-b", None) == 2 and len(index) == 1
    assert index.search("t-am1", vec(1, 0)) == [] and index.search("t-am2", vec(1, 0))


def test_removed_slots_are_reused():
    index = LocalIndex(50, 10 ** 9, 60, Clock())
    rng = np.random.default_rng(1)
    for _ in range(500):
        index.add(unit(rng.standard_normal(16)), record())
    assert len(index) == 50
    probe = unit(rng.standard_normal(16))
    index.add(probe, record(text="probe"))
    assert index.search("p", probe, 1)[0].record.text == "probe"


def test_unit_refuses_unusable_vectors():
    assert unit([0.0, 0.0]) is None and unit([float("nan"), 1.0]) is None and unit([]) is None
    assert np.linalg.norm(unit([3.0, 4.0])) == pytest.approx(1.0)
