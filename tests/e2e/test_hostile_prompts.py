"""Hostile prompts through real Envoy: personal data hidden in any field a provider sees, and
bodies built to stall a worker (issue 12, findings 4 and 6)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edge_ext.auth import hash_key
from tests.hostile import (
    KEY_ACME, KEY_OTHER, hostile_config, post, provider_env, start_mocks, stop_mocks,
)
from tests.support import start_edge, stop

KEY_REDACT = "sk-edge-hostile-redact-0003"
EMAIL, SSN, CARD = "jane.doe@example.com", "123-45-6789", "4111111111111111"
USER = {"role": "user", "content": "hello"}
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o-mini", "claude-haiku-4-5"


@pytest.fixture(scope="module")
def mocks():
    started = start_mocks("hostile")
    yield started
    stop_mocks(started)


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mocks):
    tmp = tmp_path_factory.mktemp("hostile-prompts")
    # One worker: every stream meets the same event loop, so a stalled loop shows.
    config = hostile_config(tmp, mocks["openai"], mocks["anthropic"], processor={"workers": 1})
    config["auth"]["keys"].append({"id": "redact-key", "sha256": hash_key(KEY_REDACT), "tenant": "redactor", "pii": "redact"})
    running = start_edge(tmp, config, env=provider_env())
    yield running
    assert stop(running.proc) == 0, running.log()


def openai_body(*messages, **fields):
    return {"model": OPENAI_MODEL, "messages": list(messages) or [USER], **fields}


def anthropic_body(*messages, **fields):
    return {"model": ANTHROPIC_MODEL, "max_tokens": 32, "messages": list(messages) or [USER], **fields}


def call(arguments: str) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}]}


def tool_use(value) -> dict:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": value}]}


def tool_result(content) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": content}]}


def schema(description: str, prop: str = "city") -> dict:
    return {"type": "object", "properties": {prop: {"type": "string", "description": description}}}


def send(edge, api: str, body: dict, key: str = KEY_ACME):
    if api == "openai":
        return post(f"{edge.url}/v1/chat/completions", body, key=key)
    return post(f"{edge.url}/v1/messages", body, {"anthropic-version": "2023-06-01"}, key=key)


# (api, body, where the finding is): one row per field a provider sees.
FIELDS = [
    pytest.param("openai", openai_body({"role": "user", "content": "hi", "name": EMAIL}), "messages[0].name", id="openai-message-name"),
    pytest.param("openai", openai_body(USER, call(json.dumps({"ssn": SSN}))),
                 "messages[1].tool_calls[0].function.arguments.ssn", id="openai-tool-call-arguments"),
    pytest.param("openai", openai_body(USER, call('{"to": "jane.doe\\u0040example.com"}')),
                 "messages[1].tool_calls[0].function.arguments.to", id="openai-tool-call-arguments-escaped"),
    pytest.param("openai", openai_body(USER, {"role": "assistant", "content": None, "refusal": SSN}), "messages[1].refusal",
                 id="openai-refusal"),
    pytest.param("openai", openai_body({"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"https://img.example/?o={EMAIL}"}}]}),
                 "messages[0].content[0].image_url.url", id="openai-image-url"),
    pytest.param("openai", openai_body(tools=[{"type": "function", "function": {"name": "f", "description": EMAIL}}]),
                 "tools[0].function.description", id="openai-tool-description"),
    pytest.param("openai", openai_body(tools=[{"type": "function", "function": {"name": "f", "parameters": schema(SSN)}}]),
                 "tools[0].function.parameters.properties.city.description", id="openai-parameter-description"),
    pytest.param("openai", openai_body(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema(EMAIL)}}),
                 "response_format.json_schema.schema.properties.city.description", id="openai-response-format-schema"),
    pytest.param("openai", openai_body(stop=[SSN]), "stop[0]", id="openai-stop"),
    pytest.param("openai", openai_body(user=EMAIL), "user", id="openai-user"),
    pytest.param("openai", openai_body(metadata={"note": SSN}), "metadata.note", id="openai-metadata"),
    pytest.param("anthropic", anthropic_body(USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": EMAIL, "signature": "c2ln"}]}),
                 "messages[1].content[0].thinking", id="anthropic-thinking"),
    pytest.param("anthropic", anthropic_body(USER, tool_use({"ssn": SSN})), "messages[1].content[0].input.ssn",
                 id="anthropic-tool-use-input"),
    pytest.param("anthropic", anthropic_body(USER, tool_use({EMAIL: "x"})), "messages[1].content[0].input",
                 id="anthropic-tool-use-input-key"),
    pytest.param("anthropic", anthropic_body(USER, tool_use({"card": int(CARD)})), "messages[1].content[0].input.card",
                 id="anthropic-tool-use-input-number"),
    pytest.param("anthropic", anthropic_body(USER, tool_use({}), tool_result(f"found {SSN}")), "messages[2].content[0].content",
                 id="anthropic-tool-result"),
    pytest.param("anthropic", anthropic_body(USER, tool_use({}), tool_result([{"type": "text", "text": EMAIL}])),
                 "messages[2].content[0].content[0].text", id="anthropic-tool-result-nested"),
    pytest.param("anthropic", anthropic_body({"role": "user", "content": [{"type": "document", "source": {
        "type": "text", "media_type": "text/plain", "data": SSN}}]}), "messages[0].content[0].source.data", id="anthropic-text-document"),
    pytest.param("anthropic", anthropic_body(tools=[{"name": "f", "description": EMAIL, "input_schema": schema("x")}]),
                 "tools[0].description", id="anthropic-tool-description"),
    pytest.param("anthropic", anthropic_body(metadata={"user_id": EMAIL}), "metadata.user_id", id="anthropic-metadata-user-id"),
    pytest.param("anthropic", anthropic_body(stop_sequences=[SSN]), "stop_sequences[0]", id="anthropic-stop-sequences"),
]


@pytest.mark.parametrize("api, body, where", FIELDS)
def test_personal_data_in_any_field_is_refused_and_never_reaches_a_provider(edge, mocks, api, body, where):
    status, _, data = send(edge, api, body)
    assert status == 400, data
    error = data["error"]  # both API shapes keep the message there
    assert "personal data" in error["message"] and where in error["message"]
    assert EMAIL not in json.dumps(data) and SSN not in json.dumps(data)
    if api == "openai":
        assert error["code"] == "pii_detected" and error["param"] == where
    assert mocks["openai"].requests() == [] and mocks["anthropic"].requests() == []


REDACTED = {"openai-message-name", "openai-tool-call-arguments", "openai-tool-call-arguments-escaped", "anthropic-tool-use-input",
            "anthropic-tool-use-input-key", "anthropic-tool-use-input-number", "anthropic-tool-result", "anthropic-tool-result-nested"}


@pytest.mark.parametrize("api, body, where", [field for field in FIELDS if field.id in REDACTED])
def test_redact_forwards_the_redacted_body(edge, mocks, api, body, where):
    status, _, data = send(edge, api, body, key=KEY_REDACT)
    assert status == 200, data
    (seen,) = mocks[api].requests()
    sent = json.dumps(seen["json"])
    assert EMAIL not in sent and SSN not in sent and CARD not in sent and "u0040" not in sent
    assert "[EMAIL]" in sent or "[SSN]" in sent or "[CARD]" in sent


def test_redacted_tool_arguments_reach_a_provider_of_the_other_api_redacted(edge, mocks):
    body = openai_body(USER, call(json.dumps({"to": EMAIL, "n": 2})), {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
                       model=ANTHROPIC_MODEL)
    status, _, data = send(edge, "openai", body, key=KEY_REDACT)
    assert status == 200, data
    (seen,) = mocks["anthropic"].requests()
    (use,) = [b for m in seen["json"]["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"]
    assert use["input"] == {"to": "[EMAIL]", "n": 2}


def test_images_are_not_text(edge, mocks):
    image = "iVBORw0KGgo" + CARD + "AAAA"
    body = anthropic_body({"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
        {"type": "text", "text": "what is this?"}]})
    status, _, data = send(edge, "anthropic", body)
    assert status == 200, data
    assert len(mocks["anthropic"].requests()) == 1


# --- one request must not stall the others (finding 6) --------------------------------------------

DENSE = " ".join(f"mail jane{i}@example.com call +1 415 555 {i % 10000:04d} ssn 123-45-6789" for i in range(70_000))


def hostile_requests() -> list[tuple[bytes, int]]:
    """(body, status it must get): 230,000 one-word messages in 8 MB (they stalled a worker for
    seconds), a 4 MB text dense with personal data (over the scan cap), and 256 KB of it (under
    every cap: scanned, off the event loop, and refused)."""
    many = json.dumps(openai_body(*[{"role": "user", "content": "hi"}] * 230_000)).encode()
    big = json.dumps(openai_body({"role": "user", "content": DENSE[:4_000_000]})).encode()
    small = json.dumps(openai_body({"role": "user", "content": DENSE[:256 * 1024]})).encode()
    return [(many, 413), (big, 413), (small, 400)]


def test_another_tenant_is_answered_promptly_while_hostile_bodies_are_processed(edge, mocks):
    hostile = hostile_requests()
    busy: list[tuple[float, float]] = []  # when each hostile request was in flight
    answers: list[int] = []

    def attack():
        for _ in range(2):
            for body, _status in hostile:
                started = time.monotonic()
                answers.append(post(f"{edge.url}/v1/chat/completions", body, key=KEY_ACME)[0])
                busy.append((started, time.monotonic()))

    attacker = threading.Thread(target=attack)
    attacker.start()
    served: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + 120
    while attacker.is_alive() and time.monotonic() < deadline and len(served) < 2_000:
        started = time.monotonic()
        status = send(edge, "openai", openai_body({"role": "user", "content": f"tenant other, request {len(served)}"}), key=KEY_OTHER)[0]
        served.append((started, time.monotonic(), status))
    attacker.join(timeout=60)

    # Only requests sent while a hostile body was being handled prove anything.
    during = [(end - start, status) for start, end, status in served if any(b0 <= start < b1 for b0, b1 in busy)]
    assert len(during) >= 5, (len(during), busy)
    # Blocked past Envoy's message timeout (500 ms), a request gets 504; answered at all, it is
    # well within a second.
    assert [status for _, status in during] == [200] * len(during)
    assert max(elapsed for elapsed, _ in during) < 1.0, sorted(during)[-3:]
    assert answers == [status for _ in range(2) for _, status in hostile]
    seen = mocks["openai"].requests()
    assert len(seen) == len(served) and all(len(r["json"]["messages"]) == 1 for r in seen)
