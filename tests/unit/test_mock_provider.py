"""The mock provider, driven through the official OpenAI and Anthropic SDKs.

If the SDKs parse what the mock sends (JSON bodies, SSE streams, error
bodies, retry headers), edge-ext's tests can trust the mock to stand in for
the real services. Every client uses ``max_retries=0`` unless a test is about
retries, because both SDKs retry 429/5xx by default.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from edge_ext.mock import MockSettings, start_mock

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
AZURE_KEY = "azure-test-key"
AZURE_API_VERSION = "2024-10-21"
TAIL = "This is a deterministic mock answer."

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the knowledge base",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
LOOKUP_TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
}
CLAUDE_TOOLS = [
    {"name": "search", "description": "Search", "input_schema": {"type": "object",
                                                                  "properties": {"query": {"type": "string"}}}},
    {"name": "lookup", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
]
TINY_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def mock():
    handle = await start_mock(
        MockSettings(port=0, name="primary", openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY, azure_key=AZURE_KEY)
    )
    yield handle
    await handle.stop()


@pytest.fixture
async def oai(mock):
    client = openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(mock):
    client = anthropic.AsyncAnthropic(base_url=mock.url, api_key=ANTHROPIC_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def azure(mock):
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=mock.url, api_key=AZURE_KEY, api_version=AZURE_API_VERSION, max_retries=0
    )
    yield client
    await client.close()


@pytest.fixture
async def http(mock):
    async with aiohttp.ClientSession(base_url=mock.url) as session:
        yield session


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- OpenAI


async def test_openai_json_completion_shape_and_usage(oai):
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there friend"}],
    )
    completion = raw.parse()
    assert raw.headers["x-mock-provider"] == "primary"
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.system_fingerprint.startswith("fp_")
    choice = completion.choices[0]
    assert choice.message.content == f"Mock reply to: Hello there friend. {TAIL}"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    # prompt = priming 3 + (overhead 4 + 3 words) * 2 messages; completion = 12 words.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (17, 12)
    assert completion.usage.total_tokens == 29
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    body = json.loads(raw.content)
    assert body["choices"][0]["logprobs"] is None
    assert set(body["usage"]["completion_tokens_details"]) == {
        "reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"
    }


async def test_openai_stream_matches_json_and_reports_usage_last(oai):
    messages = user("Stream me a reply please")
    plain = await oai.chat.completions.create(model="gpt-4o", messages=messages)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in with_choices)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()


async def test_openai_raw_sse_framing_without_usage(http):
    body = {"model": "gpt-4o", "messages": user("Hi"), "stream": True}
    async with http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {OPENAI_KEY}"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = (await r.read()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    # Without include_usage the chunks carry no usage key at all.
    assert all("usage" not in p for p in payloads)
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert payloads[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


@pytest.mark.parametrize(
    ("kwargs", "content", "finish", "completion_tokens"),
    [
        pytest.param({"max_tokens": 3}, "Mock reply to:", "length", 3, id="max_tokens-truncates-words"),
        pytest.param({"max_completion_tokens": 5}, "Mock reply to: Tell me", "length", 5,
                     id="max_completion_tokens-truncates-words"),
        pytest.param({"stop": ["deterministic"]}, "Mock reply to: Tell me a story. This is a", "stop", 10,
                     id="stop-sequence-cuts-before-match"),
        pytest.param({"stop": "story", "max_tokens": 100}, "Mock reply to: Tell me a", "stop", 6,
                     id="stop-string-within-budget"),
    ],
)
async def test_openai_finish_reasons(oai, kwargs, content, finish, completion_tokens):
    completion = await oai.chat.completions.create(model="gpt-4o", messages=user("Tell me a story"), **kwargs)
    assert completion.choices[0].message.content == content
    assert completion.choices[0].finish_reason == finish
    assert completion.usage.completion_tokens == completion_tokens


@pytest.mark.parametrize(
    ("tool_choice", "text", "expected_tool"),
    [
        pytest.param({"type": "function", "function": {"name": "lookup"}}, "What is up", "lookup",
                     id="named-function-forces-that-tool"),
        pytest.param("required", "What is up", "search", id="required-calls-first-tool"),
        pytest.param(None, "Please use tool to find it", "search", id="auto-with-use-tool-phrase"),
        pytest.param("auto", "What is up", None, id="auto-without-phrase-answers-text"),
        pytest.param("none", "Please use tool to find it", None, id="none-never-calls"),
    ],
)
async def test_openai_tool_calls(oai, tool_choice, text, expected_tool):
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    completion = await oai.chat.completions.create(
        model="gpt-4o", messages=user(text), tools=[SEARCH_TOOL, LOOKUP_TOOL], **extra
    )
    message = completion.choices[0].message
    if expected_tool is None:
        assert message.tool_calls is None
        assert completion.choices[0].finish_reason == "stop"
        return
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    (call,) = message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == expected_tool
    assert json.loads(call.function.arguments) == {"query": text}


async def test_openai_streamed_tool_call_and_result_round_trip(oai):
    text = "use tool: weather in Paris"
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=user(text), tools=[SEARCH_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    first = chunks[0].choices[0].delta.tool_calls[0]
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert first.function.name == "search" and first.id.startswith("call_")
    assert json.loads(arguments) == {"query": text}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    follow_up = [
        *user(text),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": first.id, "type": "function", "function": {"name": "search", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": first.id, "content": "Sunny and 21 degrees"},
    ]
    answer = await oai.chat.completions.create(model="gpt-4o", messages=follow_up, tools=[SEARCH_TOOL])
    assert answer.choices[0].message.content == f"Mock reply using tool result: Sunny and 21 degrees. {TAIL}"
    assert answer.choices[0].finish_reason == "stop"


async def test_openai_images_count_fixed_tokens_and_knobs_pin_usage(oai):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Describe this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{TINY_PNG_B64}"}},
    ]}]
    completion = await oai.chat.completions.create(
        model="gpt-4o", messages=messages,
        extra_headers={"x-mock-cached-tokens": "50", "x-mock-reasoning-tokens": "7"},
    )
    # 3 priming + 4 overhead + 2 words + 85 per image.
    assert completion.usage.prompt_tokens == 94
    assert completion.usage.prompt_tokens_details.cached_tokens == 50
    assert completion.usage.completion_tokens_details.reasoning_tokens == 7
    # Reasoning tokens are part of completion_tokens (11 words + 7).
    assert completion.usage.completion_tokens == 18
    assert completion.choices[0].message.content == f"Mock reply to: Describe this. {TAIL}"


async def test_openai_n_choices_and_reply_knob(oai):
    completion = await oai.chat.completions.create(
        model="gpt-4o", messages=user("x"), n=2, extra_headers={"x-mock-reply": "Exactly this reply"}
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert {c.message.content for c in completion.choices} == {"Exactly this reply"}
    assert completion.usage.completion_tokens == 6


async def test_openai_models_list(oai):
    models = await oai.models.list()
    ids = [m.id for m in models.data]
    assert "gpt-4o" in ids
    assert (await oai.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("no-such-model")


@pytest.mark.parametrize(
    ("headers", "exc_type", "status", "retry_after"),
    [
        pytest.param({"x-mock-status": "400"}, openai.BadRequestError, 400, None, id="400-bad-request"),
        pytest.param({"x-mock-status": "404"}, openai.NotFoundError, 404, None, id="404-not-found"),
        pytest.param({"x-mock-status": "429"}, openai.RateLimitError, 429, "1", id="429-default-retry-after"),
        pytest.param({"x-mock-status": "429", "x-mock-retry-after": "7"}, openai.RateLimitError, 429, "7",
                     id="429-custom-retry-after"),
        pytest.param({"x-mock-status": "500"}, openai.InternalServerError, 500, None, id="500-server-error"),
        pytest.param({"x-mock-status": "503", "x-mock-retry-after": "2"}, openai.InternalServerError, 503, "2",
                     id="503-with-retry-after"),
    ],
)
async def test_openai_injected_errors_map_to_sdk_exceptions(oai, headers, exc_type, status, retry_after):
    with pytest.raises(exc_type) as info:
        await oai.chat.completions.create(model="gpt-4o", messages=user("hi"), extra_headers=headers)
    err = info.value
    assert err.status_code == status
    assert err.response.headers.get("retry-after") == retry_after
    assert err.response.headers["x-mock-provider"] == "primary"
    assert set(err.response.json()["error"]) == {"message", "type", "param", "code"}


async def test_openai_wrong_key_raises_authentication_error(mock):
    async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="sk-wrong-key-000000", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert info.value.status_code == 401
    assert (info.value.body["type"], info.value.body["code"]) == ("invalid_request_error", "invalid_api_key")
    assert "sk-wrong-key-000000" not in info.value.body["message"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, None, id="missing-authorization"),
        pytest.param({"Authorization": f"Basic {OPENAI_KEY}"}, None, id="non-bearer-scheme"),
        pytest.param({"Authorization": "Bearer sk-other-key-1234"}, "invalid_api_key", id="wrong-bearer"),
        pytest.param({"api-key": OPENAI_KEY}, None, id="azure-header-on-openai-route"),
    ],
)
async def test_openai_auth_rejections(http, headers, code):
    async with http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": user("hi")},
                         headers=headers) as r:
        assert r.status == 401
        error = (await r.json())["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        pytest.param(b"{not json", 400, None, None, id="malformed-json"),
        pytest.param({"messages": user("hi")}, 400, None, None, id="missing-model"),
        pytest.param({"model": "gpt-4o"}, 400, "messages", "missing_required_parameter", id="missing-messages"),
        pytest.param({"model": "gpt-4o", "messages": []}, 400, "messages", "empty_array", id="empty-messages"),
        pytest.param({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, 400,
                     "messages[0].role", "invalid_value", id="unknown-role"),
        pytest.param({"model": "gpt-4o", "messages": user("x"), "stream_options": {"include_usage": True}}, 400,
                     "stream_options", None, id="stream-options-without-stream"),
        pytest.param({"model": "gpt-4o", "messages": user("x"), "max_tokens": 0}, 400, "max_tokens",
                     "integer_below_min_value", id="max-tokens-zero"),
        pytest.param({"model": "gpt-4o", "messages": user("x"), "tool_choice": "required"}, 400, "tool_choice",
                     None, id="tool-choice-without-tools"),
    ],
)
async def test_openai_request_validation(http, body, status, param, code):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {OPENAI_KEY}"}, **kwargs) as r:
        assert r.status == status
        error = (await r.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


# --------------------------------------------------------------------------- Azure OpenAI


async def test_azure_json_and_stream(azure, mock):
    completion = await azure.chat.completions.create(model="prod-gpt4o", messages=user("Hello azure"))
    assert completion.choices[0].message.content == f"Mock reply to: Hello azure. {TAIL}"
    assert completion.model == "prod-gpt4o"
    stream = await azure.chat.completions.create(
        model="prod-gpt4o", messages=user("Hello azure"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage.total_tokens == completion.usage.total_tokens
    (first, second) = mock.state.recorder.list()
    assert first["path"] == "/openai/deployments/prod-gpt4o/chat/completions"
    assert first["query"] == f"api-version={AZURE_API_VERSION}"
    assert first["headers"]["api-key"] == AZURE_KEY
    assert "authorization" not in first["headers"]


async def test_azure_wrong_key_and_missing_api_version(mock, http):
    async with openai.AsyncAzureOpenAI(azure_endpoint=mock.url, api_key="nope", api_version=AZURE_API_VERSION,
                                       max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(model="prod", messages=user("hi"))
    assert info.value.body["code"] == "401"
    async with http.post("/openai/deployments/prod/chat/completions", json={"messages": user("hi")},
                         headers={"api-key": AZURE_KEY}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["message"] == "Resource not found"


# --------------------------------------------------------------------------- Anthropic


async def test_anthropic_json_message_shape_and_usage(claude):
    raw = await claude.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=256, system="Be brief.", messages=user("Hello Claude")
    )
    message = await raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["x-mock-provider"] == "primary"
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-6"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == f"Mock reply to: Hello Claude. {TAIL}"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    # 3 priming + system (4 + 2 words) + user (4 + 2 words) = 15; reply = 11 words.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (15, 11)
    assert (message.usage.cache_creation_input_tokens, message.usage.cache_read_input_tokens) == (0, 0)


async def test_anthropic_stream_event_sequence(claude):
    events = []
    stream = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=user("Stream it"), stream=True
    )
    async for event in stream:
        events.append(event)
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}
    start = events[0].message
    assert start.usage.input_tokens == 9 and start.usage.output_tokens == 1
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == f"Mock reply to: Stream it. {TAIL}"
    delta = events[-2]
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("end_turn", 11)


async def test_anthropic_raw_sse_framing_includes_ping(http):
    body = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": user("Hi"), "stream": True}
    headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    async with http.post("/v1/messages", json=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = (await r.read()).decode()
    blocks = [b for b in raw.split("\n\n") if b]
    names = []
    for block in blocks:
        event_line, data_line = block.split("\n")
        name = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"


@pytest.mark.parametrize(
    ("kwargs", "text", "stop_reason", "stop_sequence", "output_tokens"),
    [
        pytest.param({"max_tokens": 4}, "Mock reply to: Tell", "max_tokens", None, 4, id="max_tokens-truncates"),
        pytest.param({"max_tokens": 100, "stop_sequences": ["deterministic", "story"]}, "Mock reply to: Tell me a",
                     "stop_sequence", "story", 6, id="earliest-stop-sequence-wins"),
    ],
)
async def test_anthropic_stop_reasons(claude, kwargs, text, stop_reason, stop_sequence, output_tokens):
    message = await claude.messages.create(model="claude-sonnet-4-6", messages=user("Tell me a story"), **kwargs)
    assert message.content[0].text == text
    assert (message.stop_reason, message.stop_sequence) == (stop_reason, stop_sequence)
    assert message.usage.output_tokens == output_tokens


@pytest.mark.parametrize(
    ("tool_choice", "text", "expected_tool"),
    [
        pytest.param({"type": "tool", "name": "lookup"}, "What is up", "lookup", id="tool-forces-named"),
        pytest.param({"type": "any"}, "What is up", "search", id="any-calls-first-tool"),
        pytest.param(None, "please USE TOOL now", "search", id="auto-with-phrase"),
        pytest.param({"type": "auto"}, "What is up", None, id="auto-without-phrase"),
        pytest.param({"type": "none"}, "use tool", None, id="none-never-calls"),
    ],
)
async def test_anthropic_tool_use(claude, tool_choice, text, expected_tool):
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    message = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=user(text), tools=CLAUDE_TOOLS, **extra
    )
    if expected_tool is None:
        assert message.stop_reason == "end_turn" and message.content[0].type == "text"
        return
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert (block.name, block.input) == (expected_tool, {"query": text})


async def test_anthropic_streamed_tool_use_and_result_round_trip(claude):
    text = "use tool for the weather"
    async with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=256, messages=user(text), tools=CLAUDE_TOOLS
    ) as stream:
        final = await stream.get_final_message()
    (block,) = final.content
    assert (block.type, block.name, block.input) == ("tool_use", "search", {"query": text})
    assert final.stop_reason == "tool_use"

    follow_up = [
        *user(text),
        {"role": "assistant", "content": [block.model_dump(include={"type", "id", "name", "input"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Rainy, 12C"}]},
    ]
    answer = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=follow_up, tools=CLAUDE_TOOLS
    )
    assert answer.content[0].text == f"Mock reply using tool result: Rainy, 12C. {TAIL}"


async def test_anthropic_image_and_cache_knobs(claude):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": TINY_PNG_B64}},
        {"type": "text", "text": "What is this"},
    ]
    message = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": content}],
        extra_headers={"x-mock-cached-tokens": "40", "x-mock-cache-creation-tokens": "20",
                       "x-mock-reasoning-tokens": "5"},
    )
    # Whole prompt: 3 + 4 + 85 (image) + 3 words = 95, of which 40 read and 20 written to the cache.
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (35, 40, 20)
    assert usage.output_tokens == 12 + 5
    assert usage.output_tokens_details.thinking_tokens == 5


async def test_anthropic_count_tokens(claude):
    result = await claude.messages.count_tokens(model="claude-sonnet-4-6", messages=user("one two three"))
    assert result.input_tokens == 3 + 4 + 3


@pytest.mark.parametrize(
    ("status", "exc_type", "error_type"),
    [
        pytest.param(400, anthropic.BadRequestError, "invalid_request_error", id="400-invalid-request"),
        pytest.param(401, anthropic.AuthenticationError, "authentication_error", id="401-authentication"),
        pytest.param(403, anthropic.PermissionDeniedError, "permission_error", id="403-permission"),
        pytest.param(404, anthropic.NotFoundError, "not_found_error", id="404-not-found"),
        pytest.param(429, anthropic.RateLimitError, "rate_limit_error", id="429-rate-limit"),
        pytest.param(500, anthropic.InternalServerError, "api_error", id="500-api-error"),
        pytest.param(529, anthropic.InternalServerError, "overloaded_error", id="529-overloaded"),
    ],
)
async def test_anthropic_injected_errors_map_to_sdk_exceptions(claude, status, exc_type, error_type):
    with pytest.raises(exc_type) as info:
        await claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=user("hi"),
                                     extra_headers={"x-mock-status": str(status)})
    err = info.value
    assert err.status_code == status
    body = err.response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == err.response.headers["request-id"]
    assert err.response.headers.get("retry-after") == ("1" if status == 429 else None)


async def test_anthropic_auth_accepts_x_api_key_and_bearer_but_not_wrong_key(mock, http):
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": user("hi")}
    version = {"anthropic-version": "2023-06-01"}
    for auth in ({"x-api-key": ANTHROPIC_KEY}, {"Authorization": f"Bearer {ANTHROPIC_KEY}"}):
        async with http.post("/v1/messages", json=body, headers={**version, **auth}) as r:
            assert r.status == 200, auth
    async with anthropic.AsyncAnthropic(base_url=mock.url, api_key="sk-ant-wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=user("hi"))
    assert info.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        pytest.param({"model": "c", "messages": user("hi")}, {}, "max_tokens: Field required",
                     id="missing-max-tokens"),
        pytest.param({"max_tokens": 5, "messages": user("hi")}, {}, "model: Field required", id="missing-model"),
        pytest.param({"model": "c", "max_tokens": 5}, {}, "messages: Field required", id="missing-messages"),
        pytest.param({"model": "c", "max_tokens": 5, "messages": user("hi")}, {"anthropic-version": None},
                     "anthropic-version: header is required", id="missing-anthropic-version"),
        pytest.param({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, {},
                     'messages: Unexpected role "system"', id="system-role-in-messages"),
        pytest.param(b"{oops", {}, "not valid JSON", id="malformed-json"),
    ],
)
async def test_anthropic_request_validation(http, body, headers, message):
    sent = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01", **headers}
    sent = {k: v for k, v in sent.items() if v is not None}
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.post("/v1/messages", headers=sent, **kwargs) as r:
        assert r.status == 400
        payload = await r.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert message in payload["error"]["message"]


# --------------------------------------------------------------------------- faults


async def test_mid_stream_drop_raises_in_both_sdks(oai, claude):
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=user("hi"), stream=True, extra_headers={"x-mock-drop": "mid-stream"}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert 0 < len(received) < 12

    stream = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=user("hi"), stream=True,
        extra_headers={"x-mock-drop": "mid-stream", "x-mock-drop-after": "5"},
    )
    events = []
    # The Anthropic SDK surfaces the truncated chunked body as the transport error.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        async for event in stream:
            events.append(event.type)
    assert events == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]


@pytest.mark.parametrize(
    ("headers",),
    [pytest.param({"x-mock-drop": "before-response"}, id="before-response"),
     pytest.param({"x-mock-drop": "mid-stream"}, id="mid-body-of-json-response")],
)
async def test_connection_drops_on_json_requests(oai, mock, headers):
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="gpt-4o", messages=user("hi"), extra_headers=headers)
    (entry,) = mock.state.recorder.list()
    assert entry["outcome"] == f"dropped-{headers['x-mock-drop']}"


async def test_in_stream_error_events(oai, claude):
    stream = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=user("hi"), stream=True,
        extra_headers={"x-mock-stream-error": "529"},
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        async for _ in stream:
            pass
    assert info.value.body["error"]["type"] == "overloaded_error"

    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=user("hi"), stream=True, extra_headers={"x-mock-stream-error": "500"}
    )
    with pytest.raises(openai.APIError) as oinfo:
        async for _ in stream:
            pass
    assert oinfo.value.body["type"] == "server_error"


async def test_latency_and_chunk_delay(oai):
    started = time.monotonic()
    await oai.chat.completions.create(model="gpt-4o", messages=user("hi"), extra_headers={"x-mock-latency-ms": "150"})
    assert time.monotonic() - started >= 0.15

    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=user("hi"), stream=True, extra_headers={"x-mock-chunk-delay-ms": "10"}
    )
    started = time.monotonic()
    stamps = [time.monotonic() async for _ in stream]
    # 13 chunks + [DONE]: at least 12 gaps of 10 ms after the first chunk.
    assert stamps[-1] - started >= 0.1


async def test_scripted_faults_fail_next_n_then_recover(oai, http, mock):
    async with http.post("/_mock/faults", json={"status": 500, "count": 2}) as r:
        assert r.status == 200
        assert (await r.json())["pending"] == 1
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    completion = await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert completion.choices[0].finish_reason == "stop"
    async with http.get("/_mock/stats") as r:
        stats = await r.json()
    assert stats["statuses"] == {"500": 2, "200": 1}
    assert stats["paths"] == {"/v1/chat/completions": 3}
    assert stats["faults_pending"] == 0


async def test_scripted_faults_respect_path_and_until_cleared(oai, claude, http):
    async with http.post("/_mock/faults", json=[{"status": 429, "count": -1, "path": "/v1/messages",
                                                 "retry_after": 3}]) as r:
        assert r.status == 200
    for _ in range(3):
        with pytest.raises(anthropic.RateLimitError) as info:
            await claude.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=user("hi"))
        assert info.value.response.headers["retry-after"] == "3"
    await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))  # other path unaffected
    async with http.delete("/_mock/faults") as r:
        assert (await r.json())["cleared"] == 1
    await claude.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=user("hi"))


async def test_sdk_retries_through_scripted_rate_limits(mock, http):
    async with http.post("/_mock/faults", json={"status": 429, "count": 2, "retry_after": 0.01}) as r:
        assert r.status == 200
    async with openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key=OPENAI_KEY, max_retries=2) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert completion.choices[0].finish_reason == "stop"
    retries = [r["headers"].get("x-stainless-retry-count") for r in mock.state.recorder.list()]
    assert retries == ["0", "1", "2"]


async def test_scripted_headers_act_as_if_the_request_carried_them(oai, http, mock):
    # For requests through a gateway that forwards no x-mock-* header of its own.
    scripted = {"headers": {"x-mock-reply": "scripted words here", "x-mock-cached-tokens": "4", "x-mock-status": "503"}}
    async with http.post("/_mock/faults", json=[scripted, {"headers": {"x-mock-reply": "second"}}]) as r:
        assert r.status == 200
    with pytest.raises(openai.InternalServerError):
        await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    completion = await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert completion.choices[0].message.content == "second"
    completion = await oai.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert completion.choices[0].message.content != "second"
    assert all(not name.startswith("x-mock-") for r in mock.state.recorder.list() for name in r["headers"])


@pytest.mark.parametrize(
    ("method", "path", "payload", "headers"),
    [
        pytest.param("POST", "/_mock/faults", {"headers": {"authorization": "Bearer x"}}, {}, id="scripted-non-mock-header"),
        pytest.param("POST", "/_mock/faults", {"headers": {"x-mock-status": "abc"}}, {}, id="scripted-header-invalid"),
        pytest.param("POST", "/_mock/faults", {"status": 200}, {}, id="fault-status-out-of-range"),
        pytest.param("POST", "/_mock/faults", {"drop": "sometimes"}, {}, id="fault-unknown-drop-mode"),
        pytest.param("POST", "/_mock/faults", {"statuss": 500}, {}, id="fault-unknown-field"),
        pytest.param("POST", "/_mock/faults", {"count": 3}, {}, id="fault-without-effect"),
        pytest.param("POST", "/v1/chat/completions", {}, {"x-mock-status": "abc"}, id="header-not-integer"),
        pytest.param("POST", "/v1/chat/completions", {}, {"x-mock-output-words": "-1"}, id="content-knob-negative"),
    ],
)
async def test_invalid_fault_configuration_is_400(http, method, path, payload, headers):
    base = {"model": "gpt-4o", "messages": user("hi")} if path.startswith("/v1") else {}
    auth = {"Authorization": f"Bearer {OPENAI_KEY}"} if path.startswith("/v1") else {}
    async with http.request(method, path, json={**base, **payload}, headers={**auth, **headers}) as r:
        assert r.status == 400
        assert "error" in await r.json()


# --------------------------------------------------------------------------- recording and identity


async def test_recording_captures_requests_and_auth_headers(oai, claude, http):
    await oai.chat.completions.create(model="gpt-4o", messages=user("first"), extra_headers={"X-Trace": "t1"})
    await claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user("second"))
    async with http.get("/_mock/requests") as r:
        records = await r.json()
    first, second = records
    assert (first["method"], first["path"], first["query"]) == ("POST", "/v1/chat/completions", "")
    assert first["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert first["headers"]["x-trace"] == "t1"
    assert json.loads(first["body"]) == first["json"]
    assert first["json"]["messages"] == user("first")
    assert (first["status"], first["api"]) == (200, "openai")
    # The Anthropic SDK sends its key as a Bearer token rather than x-api-key.
    assert second["path"] == "/v1/messages"
    assert second["headers"]["authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert "anthropic-version" in second["headers"]
    async with http.get("/_mock/requests", params={"path": "/v1/messages"}) as r:
        assert [x["path"] for x in await r.json()] == ["/v1/messages"]
    async with http.delete("/_mock/requests") as r:
        assert (await r.json())["cleared"] == 2
    async with http.get("/_mock/stats") as r:
        assert (await r.json())["total"] == 0


async def test_recording_is_a_bounded_ring_buffer():
    async with await start_mock(MockSettings(port=0, max_recorded=3)) as handle:
        async with aiohttp.ClientSession(base_url=handle.url) as session:
            for i in range(5):
                async with session.post("/v1/chat/completions",
                                        json={"model": "m", "messages": user(f"n{i}")}) as r:
                    assert r.status == 200
            async with session.get("/_mock/requests") as r:
                kept = [rec["json"]["messages"][0]["content"] for rec in await r.json()]
            async with session.get("/_mock/stats") as r:
                stats = await r.json()
    assert kept == ["n2", "n3", "n4"]
    assert (stats["total"], stats["retained"], stats["capacity"]) == (5, 3, 3)


async def test_identity_header_and_not_found_shapes(http):
    async with http.get("/_mock/health") as r:
        assert r.status == 200 and r.headers["x-mock-provider"] == "primary"
    async with http.post("/v1/embeddingz", json={}) as r:
        assert r.status == 404 and r.headers["x-mock-provider"] == "primary"
        assert (await r.json())["error"]["message"] == "Invalid URL (POST /v1/embeddingz)"
    async with http.get("/v1/messages", headers={"anthropic-version": "2023-06-01"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["type"] == "not_found_error"


async def test_any_key_accepted_when_no_key_configured():
    async with await start_mock(MockSettings(port=0, name="open")) as handle:
        async with openai.AsyncOpenAI(base_url=handle.url + "/v1", api_key="whatever", max_retries=0) as oc, \
                anthropic.AsyncAnthropic(base_url=handle.url, api_key="anything", max_retries=0) as ac:
            raw = await oc.chat.completions.with_raw_response.create(model="gpt-4o", messages=user("hi"))
            assert raw.headers["x-mock-provider"] == "open"
            message = await ac.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=user("hi"))
            assert message.stop_reason == "max_tokens"


async def test_anthropic_models_list_shares_path_with_openai(claude, oai):
    page = await claude.models.list()
    assert {m.id for m in page.data} >= {"claude-sonnet-4-6", "claude-haiku-4-5"}
    assert all(m.type == "model" for m in page.data)
    # Without anthropic-version the same path answers in OpenAI's list shape.
    openai_models = (await oai.models.list()).data
    assert {m.object for m in openai_models} == {"model"} and "gpt-4o" in {m.id for m in openai_models}


@pytest.mark.parametrize(
    ("path", "headers", "check"),
    [
        pytest.param("/v1/chat/completions", {}, lambda b: b["error"]["type"] == "invalid_request_error",
                     id="openai-shape"),
        pytest.param("/v1/messages", {"anthropic-version": "2023-06-01"},
                     lambda b: b["error"]["type"] == "request_too_large", id="anthropic-shape"),
    ],
)
async def test_oversized_body_is_413_in_api_shape(path, headers, check):
    async with await start_mock(MockSettings(port=0, max_body_bytes=2048)) as handle:
        async with aiohttp.ClientSession(base_url=handle.url) as session:
            body = json.dumps({"model": "m", "max_tokens": 5, "messages": user("x" * 4096)})
            async with session.post(path, data=body, headers=headers) as r:
                assert r.status == 413
                assert check(await r.json())
            stats = handle.state.recorder.stats()
    assert stats["statuses"] == {"413": 1}


# --------------------------------------------------------------------------- rate-limit headers


async def test_rate_limit_headers_are_off_until_scripted_then_run_down(mock, oai, claude, http):
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("hi"))
    assert "x-ratelimit-remaining-requests" not in raw.headers
    async with http.post("/_mock/ratelimits", json={"requests_limit": 3, "tokens_limit": 900, "tokens_remaining": 10,
                                                    "window_s": 30}) as resp:
        assert resp.status == 200 and (await resp.json())["requests_left"] == 3
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("hi"))
    assert (raw.headers["x-ratelimit-remaining-requests"], raw.headers["x-ratelimit-limit-requests"]) == ("2", "3")
    assert (raw.headers["x-ratelimit-remaining-tokens"], raw.headers["x-ratelimit-limit-tokens"]) == ("10", "900")
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    raw = await claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=16, messages=user("hi"))
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    async with http.get("/_mock/ratelimits") as resp:
        assert (await resp.json())["requests_left"] == 1
    async with http.post("/_mock/ratelimits", json={"requests_limit": 0}) as resp:
        assert resp.status == 400
    async with http.delete("/_mock/ratelimits") as resp:
        assert resp.status == 200
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("hi"))
    assert "x-ratelimit-remaining-requests" not in raw.headers


# --------------------------------------------------------------------------- refusals


async def test_refusals_as_each_provider_sends_them(oai, claude, azure):
    refuse = {"extra_headers": {"x-mock-refusal": "true"}}
    answer = await oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), **refuse)
    assert answer.choices[0].finish_reason == "content_filter" and not answer.choices[0].message.content
    chunks = [c async for c in await oai.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True, **refuse)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["content_filter"]
    message = await claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=user("hi"), **refuse)
    assert message.stop_reason == "refusal"
    with pytest.raises(openai.BadRequestError) as refused:
        await azure.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), **refuse)
    assert refused.value.code == "content_filter"
