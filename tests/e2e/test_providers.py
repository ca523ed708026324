"""OpenAI and Anthropic clients against OpenAI, Anthropic and Azure providers, through real Envoy."""

import json

import anthropic
import openai
import pytest

from tests.keys import PROVIDERS_ANTHROPIC_KEY as ANTHROPIC_KEY
from tests.keys import PROVIDERS_AZURE_KEY as AZURE_KEY
from tests.keys import PROVIDERS_CLIENT_KEY as CLIENT_KEY
from tests.keys import PROVIDERS_OPENAI_KEY as OPENAI_KEY
from tests.support import edge_config, start_edge, start_mock, stop

MESSAGES = [{"role": "user", "content": "Tell me about the weather"}]


@pytest.fixture(scope="module")
def mocks():
    started = {
        "openai": start_mock("openai-mock", "--openai-key", OPENAI_KEY),
        "anthropic": start_mock("anthropic-mock", "--anthropic-key", ANTHROPIC_KEY),
        "azure": start_mock("azure-mock", "--azure-key", AZURE_KEY),
    }
    yield started
    for mock in started.values():
        stop(mock.proc)


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mocks):
    tmp = tmp_path_factory.mktemp("providers")
    providers = [
        {"name": "openai-main", "kind": "openai", "base_url": mocks["openai"].url, "api_key_env": "P_OPENAI", "models": ["gpt-4o-mini"]},
        {"name": "claude", "kind": "anthropic", "base_url": mocks["anthropic"].url, "api_key_env": "P_ANTHROPIC",
         "models": ["claude-sonnet-4-6"], "default_max_tokens": 512},
        {"name": "azure", "kind": "azure_openai", "base_url": mocks["azure"].url, "api_key_env": "P_AZURE",
         "api_version": "2024-10-21", "model_map": {"azure-gpt": "gpt4o-deployment"}},
    ]
    running = start_edge(tmp, edge_config(tmp, providers),
                         env={"P_OPENAI": OPENAI_KEY, "P_ANTHROPIC": ANTHROPIC_KEY, "P_AZURE": AZURE_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


@pytest.fixture
def oai(edge):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def ant(edge):
    return anthropic.Anthropic(base_url=edge.url, api_key=CLIENT_KEY, max_retries=0)


SERVED_BY = {"gpt-4o-mini": "openai", "claude-sonnet-4-6": "anthropic"}


def script(mocks, model, headers):
    """The next request to ``model``'s mock acts as if it carried these x-mock-* headers: the edge
    forwards no client header of that kind."""
    mocks[SERVED_BY[model]].faults(headers=headers)


def only_request(mock):
    (seen,) = mock.requests()
    assert CLIENT_KEY not in json.dumps(seen["headers"])
    return seen


# -- JSON answers -------------------------------------------------------------------------------

def test_openai_client_native_openai(oai, mocks):
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-edge-provider"] == "openai-main"
    assert raw.parse().choices[0].message.content.startswith("Mock reply to")
    assert only_request(mocks["openai"])["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"


def test_openai_client_served_by_anthropic(oai, mocks):
    raw = oai.chat.completions.with_raw_response.create(model="claude-sonnet-4-6", messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["x-edge-provider"] == "claude"
    assert completion.object == "chat.completion" and completion.model == "claude-sonnet-4-6"
    assert completion.choices[0].message.content.startswith("Mock reply to")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    seen = only_request(mocks["anthropic"])
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["anthropic-version"]
    assert seen["json"]["max_tokens"] == 512  # the provider's default: OpenAI clients may omit it


def test_anthropic_client_native_anthropic(ant, mocks):
    raw = ant.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    message = raw.parse()
    assert raw.headers["x-edge-provider"] == "claude"
    assert message.content[0].text.startswith("Mock reply to")
    seen = only_request(mocks["anthropic"])
    assert seen["headers"]["x-api-key"] == ANTHROPIC_KEY


def test_anthropic_client_served_by_openai(ant, mocks):
    message = ant.messages.create(model="gpt-4o-mini", max_tokens=100, system="Be brief.", messages=MESSAGES)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text.startswith("Mock reply to")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    seen = only_request(mocks["openai"])
    assert seen["path"] == "/v1/chat/completions"
    assert seen["json"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "anthropic-version" not in seen["headers"]


def test_azure_deployment_path_version_and_key(oai, mocks):
    completion = oai.chat.completions.create(model="azure-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content
    seen = only_request(mocks["azure"])
    assert seen["path"] == "/openai/deployments/gpt4o-deployment/chat/completions"
    assert "api-version=2024-10-21" in seen["query"]
    assert seen["headers"]["api-key"] == AZURE_KEY
    assert "authorization" not in seen["headers"]


# -- streams ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated-from-anthropic"])
def test_openai_client_streams(oai, model):
    chunks = list(oai.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Mock reply to")
    # The client did not ask for usage: the extra usage chunk the edge asked for is stripped.
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated-from-anthropic"])
def test_openai_client_stream_with_usage(oai, model):
    chunks = list(oai.chat.completions.create(model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o-mini"], ids=["native", "translated-from-openai"])
def test_anthropic_client_streams(ant, model):
    with ant.messages.stream(model=model, max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Mock reply to")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


# -- tools and images ---------------------------------------------------------------------------

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                  "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated"])
def test_openai_client_tool_call_round_trip(oai, model):
    first = oai.chat.completions.create(model=model, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["query"]
    second = oai.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=[
        *MESSAGES, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"}])
    assert second.choices[0].message.content.startswith("Mock reply using tool result")


def test_anthropic_client_tool_use_served_by_openai(ant, mocks):
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    message = ant.messages.create(model="gpt-4o-mini", max_tokens=100, messages=MESSAGES, tools=[tool], tool_choice={"type": "any"})
    block = next(b for b in message.content if b.type == "tool_use")
    assert message.stop_reason == "tool_use" and block.name == "get_weather"
    sent = only_request(mocks["openai"])["json"]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "required"


def test_image_parts_are_translated(oai, mocks):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
    oai.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}]}])
    content = only_request(mocks["anthropic"])["json"]["messages"][0]["content"]
    image = next(part for part in content if part["type"] == "image")
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": pixel}


# -- errors -------------------------------------------------------------------------------------

ERRORS = [
    pytest.param(400, openai.BadRequestError, id="400"),
    pytest.param(401, openai.AuthenticationError, id="401"),
    pytest.param(429, openai.RateLimitError, id="429"),
    pytest.param(500, openai.InternalServerError, id="500"),
]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated"])
@pytest.mark.parametrize("status, exc", ERRORS)
def test_provider_errors_reach_openai_clients_in_openai_shape(oai, mocks, model, status, exc):
    script(mocks, model, {"x-mock-status": str(status)})
    with pytest.raises(exc) as info:
        oai.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body.get("message")
    if status == 429:
        assert info.value.response.headers.get("retry-after")


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o-mini"], ids=["native", "translated"])
@pytest.mark.parametrize("status, exc", [(400, anthropic.BadRequestError), (429, anthropic.RateLimitError), (500, anthropic.InternalServerError)])
def test_provider_errors_reach_anthropic_clients_in_anthropic_shape(ant, mocks, model, status, exc):
    script(mocks, model, {"x-mock-status": str(status)})
    with pytest.raises(exc) as info:
        ant.messages.create(model=model, max_tokens=10, messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.body["type"] == "error" and info.value.body["error"]["message"]


def test_edge_errors_in_the_callers_shape(ant):
    with pytest.raises(anthropic.NotFoundError) as info:
        ant.messages.create(model="no-such-model", max_tokens=10, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.create(model="claude-sonnet-4-6", max_tokens=0, messages=MESSAGES)


# -- cut streams --------------------------------------------------------------------------------
# Ways a stream fails, and what Envoy lets us do about each:
# - the upstream dies before answering, or before a byte reached the client: Envoy answers with a
#   local reply (502/503), in the caller's API shape;
# - it sends an error event mid-stream: translated into the caller's shape, nothing after it;
# - it dies after bytes reached the client: Envoy resets the client stream (no clean end); the
#   processor is not called again, so no event can be added there.

@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated"])
def test_upstream_dying_before_the_answer_is_an_openai_error(oai, mocks, model):
    script(mocks, model, {"x-mock-drop": "before-response"})
    with pytest.raises(openai.APIStatusError) as info:
        list(oai.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert info.value.status_code in (502, 503)
    assert info.value.body["type"] == "api_error" and info.value.body["code"].startswith("upstream_reset")


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o-mini"], ids=["native", "translated"])
def test_upstream_dying_before_the_answer_is_an_anthropic_error(ant, mocks, model):
    script(mocks, model, {"x-mock-drop": "before-response"})
    with pytest.raises(anthropic.APIStatusError) as info:
        with ant.messages.stream(model=model, max_tokens=100, messages=MESSAGES) as stream:
            list(stream.text_stream)
    assert info.value.status_code in (502, 503)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "api_error"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated"])
def test_in_stream_error_reaches_openai_clients_in_their_shape(oai, mocks, model):
    received = []
    script(mocks, model, {"x-mock-stream-error": "529", "x-mock-chunk-delay-ms": "20"})
    with pytest.raises(openai.APIError) as info:
        for chunk in oai.chat.completions.create(model=model, messages=MESSAGES, stream=True):
            received.append(chunk)
    assert received, "the error came after some content"
    assert info.value.message


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o-mini"], ids=["native", "translated"])
def test_in_stream_error_reaches_anthropic_clients_in_their_shape(ant, mocks, model):
    script(mocks, model, {"x-mock-stream-error": "529", "x-mock-chunk-delay-ms": "20"})
    with pytest.raises(anthropic.APIStatusError) as info:
        with ant.messages.stream(model=model, max_tokens=100, messages=MESSAGES) as stream:
            list(stream.text_stream)
    assert info.value.body["type"] == "error"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"], ids=["native", "translated"])
@pytest.mark.parametrize("delay_ms", ["0", "150"], ids=["cut-early", "cut-after-bytes-reached-the-client"])
def test_stream_cut_mid_answer_never_looks_clean(oai, mocks, model, delay_ms):
    # Early cuts race Envoy forwarding the headers: either a 502 local reply or a reset stream.
    script(mocks, model, {"x-mock-drop": "mid-stream", "x-mock-chunk-delay-ms": delay_ms})
    with pytest.raises((openai.APIStatusError, openai.APIConnectionError, httpx_errors())):
        list(oai.chat.completions.create(model=model, messages=MESSAGES, stream=True))


def httpx_errors():
    import httpx2

    return httpx2.HTTPError


# -- models -------------------------------------------------------------------------------------

def test_models_lists_what_the_config_serves(oai, ant):
    assert {m.id for m in oai.models.list()} == {"gpt-4o-mini", "claude-sonnet-4-6", "azure-gpt"}
    assert {m.id for m in ant.models.list()} == {"gpt-4o-mini", "claude-sonnet-4-6", "azure-gpt"}
