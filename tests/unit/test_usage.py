"""Usage extraction: exact figures for every shape, nothing counted twice."""

from __future__ import annotations

import json

import pytest

from edge_ext.sse import Event, SSEParser, encode
from edge_ext.usage import MAX_REPORTED_TOKENS, READERS, StreamUsage, Usage, from_anthropic, from_openai, from_responses


def oai_chunk(choices: list, usage: dict | None = None, with_usage_key: bool = True) -> Event:
    chunk: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": choices}
    if with_usage_key:
        chunk["usage"] = usage
    return Event(None, json.dumps(chunk))


def delta(content: str, finish: str | None = None) -> dict:
    return {"index": 0, "delta": {"content": content}, "logprobs": None, "finish_reason": finish}


def ant(name: str, payload: dict) -> Event:
    return Event(name, json.dumps({"type": name, **payload}))


OPENAI_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 50,
    "total_tokens": 170,
    "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 30, "audio_tokens": 0},
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"usage": OPENAI_USAGE},
            Usage(input_tokens=20, output_tokens=50, cached_input_tokens=100, reasoning_tokens=30),
        ),
        ({"usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}, Usage(9, 12)),
        (
            {"usage": {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": None,
                       "completion_tokens_details": None}},
            Usage(10, 1),
        ),
        # Newer API versions also report cache writes inside prompt_tokens.
        (
            {"usage": {"prompt_tokens": 100, "completion_tokens": 5,
                       "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}}},
            Usage(input_tokens=10, output_tokens=5, cached_input_tokens=60, cache_write_tokens=30),
        ),
        ({"usage": None}, None),
        ({"error": {"message": "x"}}, None),
    ],
)
def test_from_openai(body: dict, expected: Usage | None) -> None:
    assert from_openai(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"usage": {"input_tokens": 25, "cache_creation_input_tokens": 400, "cache_read_input_tokens": 1000,
                       "output_tokens": 15}},
            Usage(input_tokens=25, output_tokens=15, cached_input_tokens=1000, cache_write_tokens=400),
        ),
        (
            {"usage": {"input_tokens": 8, "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                       "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 32}}},
            Usage(input_tokens=8, output_tokens=40, reasoning_tokens=32),
        ),
        ({"type": "error", "error": {"type": "api_error", "message": "x"}}, None),
    ],
)
def test_from_anthropic(body: dict, expected: Usage | None) -> None:
    assert from_anthropic(body) == expected


def run(api: str, events: list[Event]) -> Usage | None:
    tracker = StreamUsage(api)  # type: ignore[arg-type]
    for event in events:
        tracker.observe(event)
    return tracker.usage


STREAM_CASES = {
    "openai stream with usage chunk": (
        "openai",
        [
            oai_chunk([delta("Hel")]),
            oai_chunk([delta("lo", "stop")]),
            oai_chunk([], OPENAI_USAGE),
            Event(None, "[DONE]"),
        ],
        Usage(input_tokens=20, output_tokens=50, cached_input_tokens=100, reasoning_tokens=30),
    ),
    "openai stream without include_usage": (
        "openai",
        [oai_chunk([delta("Hi", "stop")], with_usage_key=False), Event(None, "[DONE]")],
        None,
    ),
    "openai stream with usage: null only": (
        "openai",
        [oai_chunk([delta("Hi")]), oai_chunk([delta("", "stop")]), Event(None, "[DONE]")],
        None,
    ),
    # Servers that repeat running totals: the last one is the total.
    "openai running totals": (
        "openai",
        [
            oai_chunk([delta("a")], {"prompt_tokens": 7, "completion_tokens": 1}),
            oai_chunk([delta("b")], {"prompt_tokens": 7, "completion_tokens": 2}),
            oai_chunk([], {"prompt_tokens": 7, "completion_tokens": 3}),
        ],
        Usage(7, 3),
    ),
    "anthropic split usage": (
        "anthropic",
        [
            ant("message_start", {"message": {"id": "msg_1", "usage": {
                "input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 300,
                "output_tokens": 1}}}),
            ant("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ant("ping", {}),
            ant("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "usage is hi"}}),
            ant("content_block_stop", {"index": 0}),
            ant("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}),
            ant("message_stop", {}),
        ],
        Usage(input_tokens=25, output_tokens=15, cached_input_tokens=300, cache_write_tokens=10),
    ),
    "anthropic message_delta with cumulative input totals": (
        "anthropic",
        [
            ant("message_start", {"message": {"usage": {
                "input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": 1}}}),
            ant("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {
                "input_tokens": 40, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 200,
                "output_tokens": 15, "output_tokens_details": {"thinking_tokens": 9}}}),
            ant("message_stop", {}),
        ],
        Usage(input_tokens=40, output_tokens=15, cached_input_tokens=200, cache_write_tokens=5, reasoning_tokens=9),
    ),
    "anthropic message_delta with null input fields keeps message_start's": (
        "anthropic",
        [
            ant("message_start", {"message": {"usage": {"input_tokens": 25, "cache_read_input_tokens": 4,
                                                          "output_tokens": 1}}}),
            ant("message_delta", {"delta": {}, "usage": {"input_tokens": None, "cache_read_input_tokens": None,
                                                         "output_tokens": 15}}),
        ],
        Usage(input_tokens=25, output_tokens=15, cached_input_tokens=4),
    ),
    "anthropic cut after message_start": (
        "anthropic",
        [ant("message_start", {"message": {"usage": {"input_tokens": 25, "output_tokens": 1}}})],
        Usage(input_tokens=25, output_tokens=1),
    ),
    "anthropic error only": (
        "anthropic",
        [ant("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})],
        None,
    ),
    "openai implausible final usage is no report": (
        "openai",
        [oai_chunk([delta("Hi", "stop")]), oai_chunk([], {"prompt_tokens": 7, "completion_tokens": 10**45})],
        None,
    ),
    "anthropic implausible message_delta leaves message_start's figures whole": (
        "anthropic",
        [
            ant("message_start", {"message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}),
            ant("message_delta", {"delta": {}, "usage": {"input_tokens": 40, "output_tokens": 10**45}}),
        ],
        Usage(input_tokens=25, output_tokens=1),
    ),
}


@pytest.mark.parametrize(("api", "events", "expected"), STREAM_CASES.values(), ids=STREAM_CASES.keys())
def test_stream_usage(api: str, events: list[Event], expected: Usage | None) -> None:
    assert run(api, events) == expected


def test_stream_usage_through_the_parser_in_small_chunks() -> None:
    _, events, expected = STREAM_CASES["anthropic split usage"]
    stream = b"".join(encode(e.event, e.data) for e in events)
    parser, tracker = SSEParser(), StreamUsage("anthropic")
    for i in range(0, len(stream), 7):
        for event in parser.feed(stream[i:i + 7]):
            tracker.observe(event)
    assert tracker.usage == expected


def test_usage_arithmetic() -> None:
    a = Usage(input_tokens=20, output_tokens=50, cached_input_tokens=100, cache_write_tokens=4, reasoning_tokens=30)
    b = Usage(1, 2, 3, 4, 0)
    assert a + b == Usage(21, 52, 103, 8, 30)
    assert a.prompt_tokens == 124
    assert a.total == 174  # reasoning is inside output, never added again
    assert Usage().total == 0


def test_unknown_api_is_rejected() -> None:
    with pytest.raises(ValueError):
        StreamUsage("gemini")  # type: ignore[arg-type]


HUGE = MAX_REPORTED_TOKENS + 1

IMPLAUSIBLE_REPORTS = {
    "openai prompt": (from_openai, {"usage": {"prompt_tokens": HUGE, "completion_tokens": 3}}),
    "openai completion": (from_openai, {"usage": {"prompt_tokens": 3, "completion_tokens": 10**45}}),
    "openai cached detail": (from_openai, {"usage": {"prompt_tokens": 3, "completion_tokens": 3,
                                                     "prompt_tokens_details": {"cached_tokens": HUGE}}}),
    "anthropic output": (from_anthropic, {"usage": {"input_tokens": 3, "output_tokens": HUGE}}),
    "anthropic cache read": (from_anthropic, {"usage": {"input_tokens": 3, "output_tokens": 3,
                                                        "cache_read_input_tokens": HUGE}}),
    "responses input": (from_responses, {"usage": {"input_tokens": HUGE, "output_tokens": 3}}),
}


@pytest.mark.parametrize(("read", "body"), IMPLAUSIBLE_REPORTS.values(), ids=IMPLAUSIBLE_REPORTS.keys())
def test_a_report_past_any_plausible_count_is_no_report(read, body: dict) -> None:
    # None: the answer is charged by estimate, marked estimated, never at the reported figure.
    assert read(body) is None


def test_a_count_at_the_bound_is_taken() -> None:
    body = {"usage": {"prompt_tokens": MAX_REPORTED_TOKENS, "completion_tokens": 1}}
    assert from_openai(body) == Usage(MAX_REPORTED_TOKENS, 1)


def test_an_implausible_stream_report_is_not_final() -> None:
    tracker = StreamUsage("openai")
    tracker.observe(oai_chunk([], {"prompt_tokens": 7, "completion_tokens": HUGE}))
    assert (tracker.usage, tracker.final) == (None, False)


@pytest.mark.parametrize("api", sorted(READERS))
def test_every_api_with_a_reader_has_a_stream_reader(api: str) -> None:
    assert StreamUsage(api).usage is None
