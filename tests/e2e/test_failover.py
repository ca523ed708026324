"""In-flight failover through real Envoy: a request the first provider fails is answered by the next.

Each provider checks its own key (the mocks refuse any other), so an attempt that went out with the
previous provider's credentials would fail loudly.
"""

from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from tests.support import edge_config, free_port, scrape_until, start_edge, start_mock, stop

OPENAI_KEY, ANTHROPIC_KEY, SPARE_KEY = "sk-openai-primary", "sk-ant-secondary", "sk-openai-spare"
MESSAGES = [{"role": "user", "content": "fail me over"}]


@pytest.fixture(scope="module")
def mocks():
    started = {
        "openai": start_mock("openai", "--openai-key", OPENAI_KEY),
        "anthropic": start_mock("anthropic", "--anthropic-key", ANTHROPIC_KEY),
        "spare": start_mock("spare", "--openai-key", SPARE_KEY),
    }
    yield started
    for mock in started.values():
        stop(mock.proc)


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture(scope="module")
def edge(mocks, tmp_path_factory):
    """Model m: an OpenAI provider first, an Anthropic one second, a spare OpenAI third; and
    model solo with a single provider, which has nothing to fail over to."""
    tmp = tmp_path_factory.mktemp("failover")
    providers = [
        {"name": "primary", "kind": "openai", "base_url": mocks["openai"].url, "api_key_env": "K_PRIMARY",
         "models": ["m", "solo"], "priority": 0},
        {"name": "secondary", "kind": "anthropic", "base_url": mocks["anthropic"].url, "api_key_env": "K_SECONDARY",
         "model_map": {"m": "claude-3-5-haiku-latest"}, "priority": 1},
        {"name": "spare", "kind": "openai", "base_url": mocks["spare"].url, "api_key_env": "K_SPARE",
         "model_map": {"m": "gpt-4o-mini"}, "priority": 2},
    ]
    # A high threshold: these tests watch single requests fail over, not breakers open.
    routing = {"strategy": "failover", "max_attempts": 3, "breaker": {"failure_threshold": 1000}}
    started = start_edge(tmp, edge_config(tmp, providers, routing=routing, cache={"enabled": False}),
                         env={"K_PRIMARY": OPENAI_KEY, "K_SECONDARY": ANTHROPIC_KEY, "K_SPARE": SPARE_KEY})
    yield started
    assert stop(started.proc) == 0, started.log()


def openai_client(edge):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key="sk-client", max_retries=0)


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 503}, {"status": 429, "retry_after": 5}, {"drop": "before-response"},
], ids=["500", "503", "429_with_retry_after", "reset_before_response"])
def test_a_failed_first_attempt_is_answered_by_the_next_provider_in_the_clients_shape(edge, mocks, fault):
    mocks["openai"].faults(count=1, **fault)
    raw = openai_client(edge).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["x-edge-provider"] == "secondary" and raw.headers["x-edge-attempts"] == "2"
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    assert completion.usage.total_tokens > 0
    assert float(raw.headers["x-edge-cost-usd"]) > 0  # priced at the secondary's model
    [sent] = mocks["anthropic"].requests()
    # Re-shaped for the secondary: its path, its key, its model, and nothing of the first attempt.
    assert sent["path"] == "/v1/messages" and sent["json"]["model"] == "claude-3-5-haiku-latest"
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY and "authorization" not in {k.lower() for k in sent["headers"]}
    assert sent["headers"]["host"] == mocks["anthropic"].url.removeprefix("http://")
    assert not any(k.lower().startswith("x-edge") for k in sent["headers"])


def test_an_anthropic_stream_fails_over_and_streams_from_the_next_provider(edge, mocks):
    mocks["openai"].faults(status=500, count=1)
    client = anthropic.Anthropic(base_url=edge.url, api_key="sk-client", max_retries=0)
    with client.messages.with_streaming_response.create(
            model="m", max_tokens=64, messages=MESSAGES, stream=True) as response:
        assert response.headers["x-edge-provider"] == "secondary" and response.headers["x-edge-attempts"] == "2"
        events = [line for line in response.iter_lines() if line.startswith("event:")]
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"


def test_three_attempts_when_the_second_provider_fails_too(edge, mocks):
    mocks["openai"].faults(status=500, count=1)
    mocks["anthropic"].faults(status=529, count=1)
    raw = openai_client(edge).chat.completions.with_raw_response.create(model="m", messages=MESSAGES, stream=True)
    chunks = list(raw.parse())
    assert raw.headers["x-edge-provider"] == "spare" and raw.headers["x-edge-attempts"] == "3"
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason  # a complete stream
    # The client did not ask for usage: the chunk asked for on its behalf is not passed on.
    assert all(chunk.usage is None for chunk in chunks)
    [sent] = mocks["spare"].requests()
    assert sent["json"]["model"] == "gpt-4o-mini" and sent["headers"]["authorization"] == f"Bearer {SPARE_KEY}"
    # All attempts share Envoy's header map: the second attempt's Anthropic headers must not leak.
    assert "x-api-key" not in sent["headers"] and "anthropic-version" not in sent["headers"]


def test_when_every_attempt_fails_the_last_error_reaches_the_client(edge, mocks):
    for mock in mocks.values():
        mock.faults(status=503, count=1)
    with pytest.raises(openai.APIStatusError) as info:
        openai_client(edge).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 503
    assert info.value.response.headers["x-edge-provider"] == "spare"
    assert info.value.response.headers["x-edge-attempts"] == "3"
    assert all(len(m.requests()) == 1 for m in mocks.values())


def test_a_request_that_does_not_fail_over_costs_no_extra_processor_message(edge, mocks):
    stat = "cluster.failover_primary_secondary_spare.ext_proc.streams_started"
    before = edge.envoy_stat(stat)
    raw = openai_client(edge).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-edge-provider"] == "primary" and raw.headers["x-edge-attempts"] == "1"
    assert edge.envoy_stat(stat) == before  # the attempt filter skipped the first attempt
    mocks["openai"].faults(status=500, count=1)
    openai_client(edge).chat.completions.create(model="m", messages=MESSAGES)
    assert edge.envoy_stat(stat) == before + 1  # and ran once for the retry


def test_a_retry_the_next_api_cannot_express_is_refused_in_the_clients_shape(edge, mocks):
    mocks["openai"].faults(status=500, count=1)
    with pytest.raises(openai.APIStatusError) as info:
        # n > 1 has no Anthropic equivalent: the retry is answered, not sent as an OpenAI request.
        openai_client(edge).chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert info.value.status_code == 502 and info.value.body["code"] == "edge_ext_failover_refused"
    assert info.value.body["message"].startswith("the request cannot be sent to 'secondary'")
    assert mocks["anthropic"].requests() == []


def test_a_responses_request_fails_over_past_the_provider_that_cannot_answer_it(edge, mocks):
    # The Anthropic provider does not speak the Responses API: it is not in the plan at all.
    mocks["openai"].faults(status=500, count=1)
    raw = openai_client(edge).responses.with_raw_response.create(model="m", input="fail me over", store=False)
    assert raw.headers["x-edge-provider"] == "spare" and raw.headers["x-edge-attempts"] == "2"
    assert raw.parse().output_text and mocks["anthropic"].requests() == []
    [sent] = mocks["spare"].requests()
    assert sent["path"] == "/v1/responses" and sent["json"]["model"] == "gpt-4o-mini"
    assert sent["headers"]["authorization"] == f"Bearer {SPARE_KEY}"


def test_a_client_error_is_not_retried(edge, mocks):
    mocks["openai"].faults(status=400, count=1)
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(edge).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.response.headers["x-edge-attempts"] == "1"
    assert mocks["anthropic"].requests() == []


def test_a_model_with_one_provider_is_not_retried(edge, mocks):
    mocks["openai"].faults(status=500, count=1)
    with pytest.raises(openai.InternalServerError) as info:
        openai_client(edge).chat.completions.create(model="solo", messages=MESSAGES)
    assert info.value.response.headers["x-edge-attempts"] == "1"
    assert len(mocks["openai"].requests()) == 1


def test_concurrent_failovers_across_workers_all_succeed(edge, mocks):
    # Two workers: a retry's stream may land on either, independently of its request's stream.
    mocks["openai"].faults(status=500, count=40)
    client = openai_client(edge)

    def one(_):
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        raw.parse()
        return raw.headers["x-edge-provider"], raw.headers["x-edge-attempts"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert results == [("secondary", "2")] * 40
    scrape_until(edge, 'edge_ext_failovers_total{from_provider="primary",to_provider="secondary"}')


def test_a_dead_first_provider_is_failed_over(tmp_path, mocks):
    providers = [
        {"name": "dead", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}", "models": ["m"], "priority": 0},
        {"name": "alive", "kind": "openai", "base_url": mocks["spare"].url, "api_key_env": "K_SPARE", "models": ["m"],
         "priority": 1},
    ]
    edge = start_edge(tmp_path, edge_config(tmp_path, providers, cache={"enabled": False}), env={"K_SPARE": SPARE_KEY})
    try:
        raw = openai_client(edge).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert raw.headers["x-edge-provider"] == "alive" and raw.headers["x-edge-attempts"] == "2"
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_fallbacks_follow_the_strategy_so_cost_optimized_fails_over_to_the_next_cheapest(tmp_path, mocks):
    # Config and priority order say pricey first; cost_optimized says cheap, then mid, then pricey.
    providers = [
        {"name": name, "kind": "openai", "base_url": mocks["spare"].url, "api_key_env": "K_SPARE",
         "model_map": {"m": upstream}, "priority": priority}
        for name, upstream, priority in (("pricey", "gpt-4o", 0), ("mid", "gpt-4.1-mini", 1), ("cheap", "gpt-4.1-nano", 2))
    ]
    routing = {"strategy": "cost_optimized", "max_attempts": 2}
    edge = start_edge(tmp_path, edge_config(tmp_path, providers, routing=routing, cache={"enabled": False}),
                      env={"K_SPARE": SPARE_KEY})
    try:
        mocks["spare"].faults(status=500, count=1)
        raw = openai_client(edge).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert raw.headers["x-edge-provider"] == "mid" and raw.headers["x-edge-attempts"] == "2"
        assert [r["json"]["model"] for r in mocks["spare"].requests()] == ["gpt-4.1-nano", "gpt-4.1-mini"]
    finally:
        assert stop(edge.proc) == 0, edge.log()
