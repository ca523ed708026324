"""Budgets per key and tenant through real Envoy: a budget that runs out refuses the next request."""

import time

import openai
import pytest

from edge_ext.auth import hash_key
from tests.keys import BUDGET_KEY as KEY
from tests.support import edge_config, start_edge, start_mock, stop

MESSAGES = [{"role": "user", "content": "spend a little"}]


@pytest.fixture(scope="module")
def mock():
    started = start_mock("budget-mock")
    yield started
    stop(started.proc)


def config_for(tmp, mock, **sections):
    providers = [{"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o"]}]
    auth = {"keys": [{"id": "team-a", "sha256": hash_key(KEY), "tenant": "acme"}]}
    # gpt-4o: an answer here costs a few hundredths of a cent; the limit allows two or three.
    limits = [{"scope": "key", "id": "team-a", "period": "daily", "limit_usd": 0.0003}]
    return edge_config(tmp, providers, auth=auth, budgets={"limits": limits}, cache={"enabled": False}, **sections)


def long_answers(mock, count):
    """The next ``count`` answers have 20 words (the edge forwards no x-mock-* header itself)."""
    mock.clear()
    mock.faults(headers={"x-mock-output-words": "20"}, count=count)


def spend_until_refused(edge, mock, limit=20):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY, max_retries=0)
    served = 0
    long_answers(mock, limit)
    for _ in range(limit):
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
            served += 1
            time.sleep(0.2)  # spend is recorded after the answer, in the background
        except openai.RateLimitError as err:
            return served, err
    return served, None


def test_budget_runs_out_and_names_itself(tmp_path, mock):
    edge = start_edge(tmp_path, config_for(tmp_path, mock))
    try:
        served, err = spend_until_refused(edge, mock)
        assert err is not None and 1 <= served <= 10
        assert err.body["code"] == "budget_exceeded"
        assert "key 'team-a'" in err.body["message"] and "daily" in err.body["message"]
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_two_replicas_share_one_budget_through_redis(tmp_path, mock, shared_redis):
    edges = []
    try:
        for name in ("one", "two"):
            edges.append(start_edge(tmp_path / name, config_for(tmp_path / name, mock, redis={"url": shared_redis.url})))
        served, err = spend_until_refused(edges[0], mock)
        assert err is not None and served >= 1
        client = openai.OpenAI(base_url=f"{edges[1].url}/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert info.value.body["code"] == "budget_exceeded"
    finally:
        for edge in edges:
            assert stop(edge.proc) == 0, edge.log()


def test_tokens_per_minute_per_key(tmp_path, mock):
    providers = [{"name": "oa", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o"]}]
    auth = {"keys": [{"id": "tpm-key", "sha256": hash_key(KEY), "tokens_per_minute": 60}]}
    edge = start_edge(tmp_path, edge_config(tmp_path, providers, auth=auth, cache={"enabled": False}))
    try:
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY, max_retries=0)
        refused = None
        long_answers(mock, 10)
        for _ in range(10):
            try:
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                time.sleep(0.2)
            except openai.RateLimitError as err:
                refused = err
                break
        assert refused is not None, "60 tokens a minute cannot cover ten answers of ~30 tokens"
        assert refused.body["code"] == "tokens_per_minute_exceeded"
        assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_admin_reports_spend_and_budget_state(tmp_path, mock):
    from edge_ext.admin.pb import admin_pb2

    config = config_for(tmp_path, mock)
    edge = start_edge(tmp_path, config)
    try:
        served, err = spend_until_refused(edge, mock)
        assert err is not None
        with edge.admin_client() as admin:
            reply = admin.GetSpend(admin_pb2.GetSpendRequest(scope="key", id="team-a"), timeout=5)
        (budget,) = reply.budgets
        assert (budget.scope, budget.id, budget.period, budget.allowed) == ("key", "team-a", "daily", False)
        assert float(budget.spent_usd) >= float(budget.limit_usd) == 0.0003
    finally:
        assert stop(edge.proc) == 0, edge.log()
