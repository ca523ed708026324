"""A provider's content-policy refusal is an answer, not an outage: through real Envoy it reaches
the client from the provider that refused (plain, streamed, translated, Azure's 400), is never
failed over, and never counts against that provider's breaker."""

import anthropic
import openai
import pytest

from tests.support import edge_config, scrape_until, start_edge, stop

MESSAGES = [{"role": "user", "content": "something a policy refuses"}]
REFUSE = {"headers": {"x-mock-refusal": "true"}, "count": -1}


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mocks):
    primary, secondary = mocks
    providers = [
        {"name": "primary", "kind": "openai", "base_url": primary.url, "models": ["m"], "priority": 0},
        {"name": "az", "kind": "azure_openai", "base_url": primary.url, "api_version": "2024-10-21",
         "model_map": {"a": "gpt-4o-mini"}, "priority": 0},
        {"name": "secondary", "kind": "openai", "base_url": secondary.url, "models": ["m"],
         "model_map": {"a": "gpt-4o-mini"}, "priority": 1},
    ]
    # One counted failure would open a breaker: a refusal must not be one.
    tmp = tmp_path_factory.mktemp("refusals")
    started = start_edge(tmp, edge_config(tmp, providers, routing={"strategy": "failover", "breaker": {"failure_threshold": 1}},
                                          cache={"enabled": False}))
    yield started
    assert stop(started.proc) == 0, started.log()


def test_refusals_are_answers_never_failed_over_nor_breaker_failures(edge, mocks):
    primary, secondary = mocks
    primary.clear()
    secondary.clear()
    primary.faults(**REFUSE)
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)
    for _ in range(3):  # later rounds: after the earlier outcomes reached the breakers
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert (raw.headers["x-edge-provider"], raw.headers["x-edge-attempts"]) == ("primary", "1")
        assert raw.parse().choices[0].finish_reason == "content_filter"

        with client.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES, stream=True) as raw:
            assert raw.headers["x-edge-provider"] == "primary"
            chunks = list(raw.parse())
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["content_filter"]

        message = anthropic.Anthropic(base_url=edge.url, api_key="sk-client", max_retries=0).messages.create(
            model="m", max_tokens=16, messages=MESSAGES)
        assert message.stop_reason == "refusal"

        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="a", messages=MESSAGES)
        assert refused.value.code == "content_filter"
        assert refused.value.response.headers["x-edge-provider"] == "az"
    assert secondary.requests() == []


@pytest.fixture(scope="module")
def fallback_edge(tmp_path_factory, mocks):
    primary, secondary = mocks
    providers = [
        {"name": "primary", "kind": "openai", "base_url": primary.url, "models": ["m"]},
        {"name": "az", "kind": "azure_openai", "base_url": primary.url, "api_version": "2024-10-21",
         "model_map": {"a": "gpt-4o-mini"}},
        {"name": "secondary", "kind": "openai", "base_url": secondary.url, "model_map": {"safe": "gpt-4o"}},
    ]
    tmp = tmp_path_factory.mktemp("refusal-fallback")
    routing = {"breaker": {"failure_threshold": 1}, "refusal_fallback": {"m": "safe", "a": "safe"}}
    started = start_edge(tmp, edge_config(tmp, providers, routing=routing, cache={"enabled": False}))
    yield started
    assert stop(started.proc) == 0, started.log()


def test_a_refusal_is_retried_on_the_groups_refusal_fallback(fallback_edge, mocks):
    primary, secondary = mocks
    primary.clear()
    secondary.clear()
    client = openai.OpenAI(base_url=f"{fallback_edge.url}/v1", api_key="sk-client", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert (raw.headers["x-edge-provider"], "x-edge-refusal-fallback" in raw.headers) == ("primary", False)

    primary.faults(**REFUSE)
    for _ in range(3):  # the first provider refused: not a failure, it stays the first choice
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert (raw.headers["x-edge-provider"], raw.headers["x-edge-attempts"]) == ("secondary", "2")
        assert raw.headers["x-edge-refusal-fallback"] == "safe"
        answer = raw.parse()
        assert answer.choices[0].finish_reason == "stop" and answer.model == "gpt-4o"
    assert len(primary.requests()) == 4 and len(secondary.requests()) == 3
    assert [r["json"]["model"] for r in secondary.requests()] == ["gpt-4o"] * 3

    # A stream refused before its first byte (Azure's prompt filter) is retried too.
    with client.chat.completions.with_streaming_response.create(model="a", messages=MESSAGES, stream=True) as raw:
        assert (raw.headers["x-edge-provider"], raw.headers["x-edge-refusal-fallback"]) == ("secondary", "safe")
        chunks = list(raw.parse())
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    scrape_until(fallback_edge, 'edge_ext_refusal_fallbacks_total{fallback="safe",model="m"} 3.0',
                 'edge_ext_refusal_fallbacks_total{fallback="safe",model="a"} 1.0',
                 'edge_ext_upstream_attempts_total{provider="primary",result="refused"} 3.0')
