"""The mock's Responses API, driven through the official OpenAI SDK: shapes, the event sequence,
Azure's v1 path, validation, and the mock's faults applied there too."""

from __future__ import annotations

import openai
import pytest

from edge_ext.mock import MockSettings, start_mock

OPENAI_KEY, AZURE_KEY = "sk-test-openai-0123456789", "azure-test-key"
EVENTS = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
          "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]


@pytest.fixture
async def mock():
    handle = await start_mock(MockSettings(port=0, name="primary", openai_key=OPENAI_KEY, azure_key=AZURE_KEY))
    yield handle
    await handle.stop()


@pytest.fixture
async def oai(mock):
    client = openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    yield client
    await client.close()


async def test_a_json_response_has_the_apis_shape_and_usage(oai):
    response = await oai.responses.create(model="gpt-4o", input="Hello there friend", instructions="Be terse.")
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    [item] = response.output
    assert item.type == "message" and item.id.startswith("msg_") and item.role == "assistant"
    assert item.content[0].type == "output_text" and item.content[0].annotations == []
    assert response.output_text.startswith("Mock reply to: Hello there friend.")
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens and usage.input_tokens > 3
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0


async def test_the_stream_is_the_apis_event_sequence(oai):
    stream = await oai.responses.create(model="gpt-4o", input=[{"role": "user", "content": "stream it"}], stream=True,
                                        extra_headers={"x-mock-cached-tokens": "2", "x-mock-reasoning-tokens": "3"})
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert [k for k in kinds if k != "response.output_text.delta"] == EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text
    assert final.usage.input_tokens_details.cached_tokens == 2 and final.usage.output_tokens_details.reasoning_tokens == 3
    assert events[0].response.usage is None and events[0].response.status == "in_progress"


async def test_an_output_cap_ends_the_response_incomplete(oai):
    response = await oai.responses.create(model="gpt-4o", input="hi", max_output_tokens=16,
                                          extra_headers={"x-mock-output-words": "40"})
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16


async def test_azure_serves_it_on_its_v1_path(mock):
    client = openai.AsyncOpenAI(base_url=mock.url + "/openai/v1", api_key="unused", max_retries=0,
                                default_headers={"api-key": AZURE_KEY})
    response = await client.responses.create(model="my-deployment", input="hi")
    await client.close()
    assert response.model == "my-deployment" and response.status == "completed"
    [entry] = mock.state.recorder.list()
    assert entry["path"] == "/openai/v1/responses"


@pytest.mark.parametrize("body, param", [
    pytest.param({"input": "hi"}, "model", id="missing-model"),
    pytest.param({"model": "gpt-4o", "input": 4}, "input", id="input-a-number"),
    pytest.param({"model": "gpt-4o", "input": "hi", "stream": "yes"}, "stream", id="stream-a-string"),
])
async def test_bad_requests_are_400_naming_the_field(oai, body, param):
    with pytest.raises(openai.BadRequestError) as info:
        await oai.post("/responses", body=body, cast_to=object)
    assert info.value.body["param"] == param


async def test_a_wrong_key_is_401(mock):
    client = openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="sk-wrong-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.responses.create(model="gpt-4o", input="hi")
    await client.close()


async def test_faults_apply_to_responses(oai, mock):
    with pytest.raises(openai.RateLimitError):
        await oai.responses.create(model="gpt-4o", input="hi", extra_headers={"x-mock-status": "429"})
    with pytest.raises(openai.APIConnectionError):
        await oai.responses.create(model="gpt-4o", input="hi", extra_headers={"x-mock-drop": "before-response"})
    stream = await oai.responses.create(model="gpt-4o", input="hi", stream=True,
                                        extra_headers={"x-mock-drop": "mid-stream", "x-mock-drop-after": "5"})
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            seen.append(event.type)
    assert seen == EVENTS[:4] + ["response.output_text.delta"]
    stream = await oai.responses.create(model="gpt-4o", input="hi", stream=True,
                                        extra_headers={"x-mock-stream-error": "500"})
    # The API's error event names its code at the top level; the SDK hands it over as an event.
    events = [event async for event in stream]
    assert events[-1].type == "error" and events[-1].code == "server_error" and len(events) == 5


async def test_scripted_faults_name_the_responses_path(oai, mock):
    mock.state.faults.add({"status": 503, "path": "/v1/responses"})
    await oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "unaffected"}])
    with pytest.raises(openai.InternalServerError):
        await oai.responses.create(model="gpt-4o", input="hi")
    assert (await oai.responses.create(model="gpt-4o", input="hi")).status == "completed"
