"""The prompt PII policy: every client string the provider sees, in both APIs, and its cost."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from edge_ext.apis.anthropic import ANTHROPIC
from edge_ext.apis.limits import RequestLimits, check_shape
from edge_ext.apis.openai import OPENAI
from edge_ext.config.models import Processor
from edge_ext.errors import BodyTooLarge, PiiBlocked
from edge_ext.driver import PromptGuard
from edge_ext.policy.pii import guard_prompt
from edge_ext.redact.document import Document

EMAIL, SSN, CARD = "jane.doe@example.com", "123-45-6789", "4111111111111111"
USER = {"role": "user", "content": "hello"}


def oa(*messages, **fields):
    return OPENAI.parse(json.dumps({"model": "gpt-4o", "messages": list(messages) or [USER], **fields}).encode())


def an(*messages, **fields):
    body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": list(messages) or [USER], **fields}
    return ANTHROPIC.parse(json.dumps(body).encode())


def call(arguments: str, **function) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments, **function}}]}


def tool_use(value) -> dict:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": value}]}


def tool_result(content) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": content}]}


def schema(description: str, prop: str = "city") -> dict:
    return {"type": "object", "properties": {prop: {"type": "string", "description": description}}}


# (request, kind, where the first finding is)
FIELDS = [
    pytest.param(lambda: oa({"role": "user", "content": f"I am {EMAIL}"}), "EMAIL", "messages[0].content", id="openai-content"),
    pytest.param(lambda: oa({"role": "user", "content": [{"type": "text", "text": SSN}]}), "SSN",
                 "messages[0].content[0].text", id="openai-text-part"),
    pytest.param(lambda: oa({"role": "user", "content": "hi", "name": EMAIL}), "EMAIL", "messages[0].name", id="openai-name"),
    pytest.param(lambda: oa(USER, {"role": "assistant", "content": None, "refusal": f"not {SSN}"}), "SSN",
                 "messages[1].refusal", id="openai-refusal"),
    pytest.param(lambda: oa(USER, {"role": "assistant", "content": [{"type": "refusal", "refusal": EMAIL}]}), "EMAIL",
                 "messages[1].content[0].refusal", id="openai-refusal-part"),
    pytest.param(lambda: oa(USER, call(json.dumps({"ssn": SSN}))), "SSN",
                 "messages[1].tool_calls[0].function.arguments.ssn", id="openai-tool-arguments"),
    pytest.param(lambda: oa(USER, call('{"to": "jane.doe\\u0040example.com"}')), "EMAIL",
                 "messages[1].tool_calls[0].function.arguments.to", id="openai-tool-arguments-escaped"),
    pytest.param(lambda: oa(USER, call(f'{{"a": "x", "a": "{EMAIL}"}}')), "EMAIL",
                 "messages[1].tool_calls[0].function.arguments", id="openai-tool-arguments-duplicate-key"),
    pytest.param(lambda: oa(USER, call(f"not json {SSN}")), "SSN",
                 "messages[1].tool_calls[0].function.arguments", id="openai-tool-arguments-text"),
    pytest.param(lambda: oa(USER, call(json.dumps({"card": int(CARD)}))), "CARD",
                 "messages[1].tool_calls[0].function.arguments.card", id="openai-tool-arguments-number"),
    pytest.param(lambda: oa(USER, call("{}"), {"role": "tool", "tool_call_id": "call_1", "content": EMAIL}), "EMAIL",
                 "messages[2].content", id="openai-tool-result"),
    pytest.param(lambda: oa(tools=[{"type": "function", "function": {"name": "f", "description": f"mail {EMAIL}"}}]),
                 "EMAIL", "tools[0].function.description", id="openai-tool-description"),
    pytest.param(lambda: oa(tools=[{"type": "function", "function": {"name": "f", "parameters": schema(SSN)}}]),
                 "SSN", "tools[0].function.parameters.properties.city.description", id="openai-parameter-description"),
    pytest.param(lambda: oa(tools=[{"type": "function", "function": {"name": "f", "parameters": schema("x", EMAIL)}}]),
                 "EMAIL", "tools[0].function.parameters.properties", id="openai-parameter-name"),
    pytest.param(lambda: oa(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema(EMAIL)}}),
                 "EMAIL", "response_format.json_schema.schema.properties.city.description", id="openai-response-schema"),
    pytest.param(lambda: oa(stop=["done", SSN]), "SSN", "stop[1]", id="openai-stop"),
    pytest.param(lambda: oa(user=EMAIL), "EMAIL", "user", id="openai-user"),
    pytest.param(lambda: oa(metadata={"note": SSN}), "SSN", "metadata.note", id="openai-metadata"),
    pytest.param(lambda: oa({"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"https://x.io/?to={EMAIL}"}}]}),
                 "EMAIL", "messages[0].content[0].image_url.url", id="openai-image-url"),
    pytest.param(lambda: oa(future_field={"deep": [{"deeper": f"card {CARD}"}]}), "CARD", "future_field.deep[0].deeper",
                 id="openai-unknown-field"),
    pytest.param(lambda: an(system=f"user is {EMAIL}"), "EMAIL", "system", id="anthropic-system"),
    pytest.param(lambda: an(system=[{"type": "text", "text": SSN}]), "SSN", "system[0].text", id="anthropic-system-blocks"),
    pytest.param(lambda: an({"role": "user", "content": [{"type": "text", "text": EMAIL}]}), "EMAIL",
                 "messages[0].content[0].text", id="anthropic-text-block"),
    pytest.param(lambda: an(USER, tool_use({"ssn": SSN})), "SSN", "messages[1].content[0].input.ssn", id="anthropic-tool-use-input"),
    pytest.param(lambda: an(USER, tool_use({"records": [{"card": int(CARD)}]})), "CARD",
                 "messages[1].content[0].input.records[0].card", id="anthropic-tool-use-number"),
    pytest.param(lambda: an(USER, tool_use({EMAIL: "x"})), "EMAIL", "messages[1].content[0].input", id="anthropic-tool-use-key"),
    pytest.param(lambda: an(USER, tool_use({}), tool_result(f"found {SSN}")), "SSN", "messages[2].content[0].content",
                 id="anthropic-tool-result"),
    pytest.param(lambda: an(USER, tool_use({}), tool_result([{"type": "text", "text": EMAIL}])), "EMAIL",
                 "messages[2].content[0].content[0].text", id="anthropic-tool-result-blocks"),
    pytest.param(lambda: an({"role": "user", "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                                       "data": SSN}}]}),
                 "SSN", "messages[0].content[0].source.data", id="anthropic-text-document"),
    pytest.param(lambda: an({"role": "user", "content": [{"type": "document", "title": EMAIL, "source": {
        "type": "text", "media_type": "text/plain", "data": "x"}}]}), "EMAIL", "messages[0].content[0].title", id="anthropic-document-title"),
    pytest.param(lambda: an(USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": SSN, "signature": "c2ln"}]}),
                 "SSN", "messages[1].content[0].thinking", id="anthropic-thinking"),
    pytest.param(lambda: an(tools=[{"name": "f", "description": EMAIL, "input_schema": schema("x")}]), "EMAIL",
                 "tools[0].description", id="anthropic-tool-description"),
    pytest.param(lambda: an(tools=[{"name": "f", "input_schema": schema(SSN)}]), "SSN",
                 "tools[0].input_schema.properties.city.description", id="anthropic-input-schema"),
    pytest.param(lambda: an(metadata={"user_id": EMAIL}), "EMAIL", "metadata.user_id", id="anthropic-metadata"),
    pytest.param(lambda: an(stop_sequences=[SSN]), "SSN", "stop_sequences[0]", id="anthropic-stop-sequences"),
]


@pytest.mark.parametrize("make, kind, where", FIELDS)
def test_block_finds_personal_data_in_every_field_and_says_where(make, kind, where):
    with pytest.raises(PiiBlocked) as info:
        guard_prompt(make(), "block")
    assert info.value.param == where and kind in info.value.message
    assert EMAIL not in info.value.message and SSN not in info.value.message and CARD not in info.value.message


@pytest.mark.parametrize("make, kind, where", FIELDS)
def test_redact_leaves_nothing_of_it_in_the_body(make, kind, where):
    request = make()
    redacted = guard_prompt(request, "redact")
    sent = json.dumps(redacted.body)
    assert redacted.rewritten and f"[{kind}]" in sent
    assert EMAIL not in sent and SSN not in sent and CARD not in sent and "jane.doe\\\\u0040" not in sent


IMAGE = "iVBORw0KGgo" + CARD + "AAAA"  # base64 whose characters happen to read as a card number
NOT_TEXT = [
    pytest.param(lambda: oa({"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}]}),
                 id="openai-image-data-url"),
    pytest.param(lambda: oa({"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf",
                                                                                   "file_data": f"data:application/pdf;base64,{IMAGE}"}}]}),
                 id="openai-file-data"),
    pytest.param(lambda: oa({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": IMAGE, "format": "wav"}}]}),
                 id="openai-input-audio"),
    pytest.param(lambda: an({"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                                    "data": IMAGE}}]}),
                 id="anthropic-base64-image"),
    pytest.param(lambda: OPENAI.parse(json.dumps({"model": "v1.2.3.4", "messages": [USER]}).encode()), id="model-name"),
    pytest.param(lambda: oa(USER, call(json.dumps({"city": "Paris", "unit": "c"})), {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
                            max_tokens=200, temperature=0.2, seed=12345678,
                            tools=[{"type": "function", "function": {"name": "lookup", "parameters": schema("A city")}}]),
                 id="ordinary-tool-conversation"),
]


@pytest.mark.parametrize("make", NOT_TEXT)
def test_binary_payloads_the_model_name_and_ordinary_bodies_pass(make):
    request = make()
    assert guard_prompt(request, "block") is request
    assert guard_prompt(request, "redact") is request


def test_redacted_tool_arguments_stay_json_and_keys_are_redacted():
    request = guard_prompt(oa(USER, call(json.dumps({"to": EMAIL, "n": 1}))), "redact")
    assert json.loads(request.body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"to": "[EMAIL]", "n": 1}
    request = guard_prompt(an(USER, tool_use({EMAIL: {"card": int(CARD)}, "ok": "yes"})), "redact")
    assert request.body["messages"][1]["content"][0]["input"] == {"[EMAIL]": {"card": "[CARD]"}, "ok": "yes"}


def test_a_secret_named_by_its_key_is_found_and_recurrences_too():
    request = guard_prompt(an(USER, tool_use({"password": "hunter2hunter2"}), tool_result("it was hunter2hunter2")), "redact")
    assert "hunter2" not in json.dumps(request.body)


def test_keys_that_would_merge_once_redacted_refuse_the_request():
    with pytest.raises(PiiBlocked, match="cannot be redacted apart"):
        guard_prompt(an(USER, tool_use({EMAIL: 1, "a@b.io": 2})), "redact")


def test_a_path_never_repeats_a_key_that_holds_personal_data():
    with pytest.raises(PiiBlocked) as info:
        guard_prompt(an(USER, tool_use({EMAIL: {"ssn": SSN}})), "block")
    assert info.value.param == "messages[1].content[0].input"
    with pytest.raises(PiiBlocked) as info:
        guard_prompt(oa(metadata={"sk-not-a-name": {"k": SSN}}), "block")
    assert info.value.param == "metadata.*.k"


def test_off_returns_the_request_untouched():
    request = oa({"role": "user", "content": EMAIL})
    assert guard_prompt(request, "off") is request


# --- cost ---------------------------------------------------------------------------------------


def test_scanned_text_is_capped_values_counted_too():
    with pytest.raises(BodyTooLarge, match="processor.max_scanned_chars"):
        guard_prompt(oa({"role": "user", "content": "x" * 5000}), "block", max_chars=4096)
    with pytest.raises(BodyTooLarge):
        guard_prompt(oa(metadata={"zeros": [0] * 5000}), "block", max_chars=4096)
    assert guard_prompt(oa({"role": "user", "content": "x" * 3000}), "block", max_chars=4096)


def test_too_many_distinct_secrets_to_redact_refuse_the_request():
    text = " ".join(f"token={i:08d}abcdefghijkl" for i in range(30_000))
    with pytest.raises(PiiBlocked, match="too many distinct secrets"):
        guard_prompt(oa({"role": "user", "content": text}), "redact")


def test_many_short_messages_cost_one_scan():
    # 230,000 short messages took 1.2 s to scan one string at a time.
    request = oa(*({"role": "user", "content": f"hi {i}"} for i in range(100_000)))
    started = time.process_time()
    assert guard_prompt(request, "block") is request
    assert time.process_time() - started < 1.5


def test_the_document_text_reads_members_as_name_value():
    doc = Document({"a": "x", "b": [1, "y"], "c": {"password": "z"}})
    assert sorted(doc.text.split("\n")) == sorted(["a: x", "b", "c", "", "y", "password: z", ""])


async def test_a_large_body_is_scanned_off_the_event_loop():
    dense = " ".join(f"mail jane{i}@example.com call +1 415 555 {i % 10000:04d} ssn 123-45-6789" for i in range(16_000))
    request = oa({"role": "user", "content": dense})
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    redacted = await PromptGuard(max_chars=4 * 1024 * 1024).check(request, "redact")
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert "jane17@example.com" not in redacted.body["messages"][0]["content"]
    # Scanned inline, the loop would not have ticked once; in a thread it ticks every few ms.
    assert ticks >= min(5, elapsed / 0.05), (ticks, elapsed)


async def test_a_small_body_is_scanned_inline():
    guard = PromptGuard(max_chars=1024 * 1024)
    request = oa({"role": "user", "content": "hello"})
    assert await guard.check(request, "block") is request
    assert guard._executor is None


# --- request shape ------------------------------------------------------------------------------

LIMITS = RequestLimits(max_messages=4, max_content_parts=6)
PART = {"type": "text", "text": "x"}
SHAPES = [
    pytest.param({"messages": [USER] * 5}, "max_messages", id="too-many-messages"),
    pytest.param({"messages": [{"role": "user", "content": [PART] * 7}]}, "max_content_parts", id="content-parts"),
    pytest.param({"messages": [call("{}")] * 4, "system": [PART] * 3}, "max_content_parts", id="tool-calls-and-system"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": [PART] * 6}]}]},
                 "max_content_parts", id="tool-result-content"),
]


@pytest.mark.parametrize("body, cap", SHAPES)
def test_request_shape_over_a_cap_is_413_naming_it(body, cap):
    with pytest.raises(BodyTooLarge, match=f"processor.{cap}") as info:
        check_shape(body, LIMITS)
    assert info.value.status == 413


def test_request_shape_within_the_caps_passes():
    check_shape({"messages": [USER, {"role": "user", "content": [PART] * 3}, call("{}")], "system": [PART] * 2}, LIMITS)
    assert RequestLimits.of(Processor()) == RequestLimits(max_messages=10_000, max_content_parts=40_000)


# -- Envoy's deadline while a large body is scanned -------------------------------------------
def policy_with_pii(pii: str):
    from edge_ext.clock import FakeClock
    from edge_ext.config import parse_config
    from edge_ext.driver import Driver
    from edge_ext.policy.engine import Policy

    config = parse_config(f"""
auth: {{enabled: false, pii: {pii}}}
cache: {{enabled: false}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:9", models: [gpt-4o-mini]}}]
""")
    return Driver(Policy(config, FakeClock(), {"p": "sk-p"}), config)


@pytest.mark.parametrize("pii, text, routed", [
    ("redact", "plain words " * 3000, True),
    ("block", "write to alice@example.com " + "plain words " * 3000, False),
], ids=["large-clean-body-is-routed-after-the-scan", "large-body-with-pii-is-refused-after-the-scan"])
async def test_a_scan_off_the_loop_first_extends_envoys_deadline(pii, text, routed):
    from edge_ext.policy.decisions import Continue, Respond
    from edge_ext.policy.needs import ScanPrompt

    driver = policy_with_pii(pii)
    policy = driver.policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).encode()
    deferred = policy.on_request_body(st, body)
    assert isinstance(deferred, ScanPrompt) and deferred.extend_s > 5  # above the 500 ms message timeout
    decision = await driver.run(st, deferred)
    assert isinstance(decision, Continue if routed else Respond)
    if not routed:
        assert decision.status == 400 and b"alice@example.com" not in decision.body


def test_a_small_body_is_scanned_inline_without_a_deferral():
    from edge_ext.policy.decisions import Continue

    policy = policy_with_pii("block").policy
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    assert isinstance(policy.on_request_body(st, body), Continue)


@pytest.mark.parametrize("pii, model", [
    ("redact", "gpt-4o-mini"),
    ("off", "claude-haiku-4-5"),
], ids=["redacted-arguments", "arguments-translated-for-anthropic"])
def test_a_lone_surrogate_inside_tool_call_arguments_is_a_400(pii, model):
    from edge_ext.clock import FakeClock
    from edge_ext.config import parse_config
    from edge_ext.policy.decisions import Respond
    from edge_ext.policy.engine import Policy

    config = parse_config(f"""
auth: {{enabled: false, pii: "{pii}"}}
cache: {{enabled: false}}
providers:
  - {{name: p, kind: openai, base_url: "http://127.0.0.1:9", models: [gpt-4o-mini]}}
  - {{name: a, kind: anthropic, base_url: "http://127.0.0.1:8", models: [claude-haiku-4-5]}}
""")
    policy = Policy(config, FakeClock(), {"p": "sk-p", "a": "sk-a"})
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": "\\ud800 bob@example.com"}'}}
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "tool_calls": [call]},
                                                     {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}).encode()
    decision = policy.on_request_body(st, body)
    assert isinstance(decision, Respond) and decision.status == 400 and b"surrogate" in decision.body


def test_a_prompt_that_is_json_text_is_redacted_as_text_keeping_its_form():
    text = '{\n  "user": "bob@example.com",\n  "ratio": 1000.0,\n  "big": 12345678901234567890\n}'
    request = OPENAI.parse(json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode())
    redacted = guard_prompt(request, "redact", 1_000_000).body["messages"][0]["content"]
    assert "bob@example.com" not in redacted
    assert redacted.replace(redacted.split('"user": "')[1].split('"')[0], "bob@example.com") == text
