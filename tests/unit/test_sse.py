"""The incremental SSE parser: any chunking of a stream parses the same."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ext.sse import Event, SSEParser, encode

# Event names never contain line breaks; data may hold any text except CR
# (SSE cannot carry a CR: parsers read it as a line end, see test below).
names = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
datas = st.text(st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), max_size=40)
events = st.lists(st.builds(Event, names, datas), max_size=8)


def parse_in_chunks(stream: bytes, cuts: list[int]) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    out: list[Event] = []
    last = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        out += parser.feed(stream[last:cut])
        last = cut
    return out, parser


@settings(max_examples=200, deadline=None)
@given(events, st.data(), st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_chunking_round_trips(original: list[Event], draw, newline: str) -> None:
    stream = b"".join(encode(e.event, e.data) for e in original)
    # Every line ending style is valid SSE and must parse identically.
    stream = stream.replace(b"\n", newline.encode())
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), max_size=len(stream) + 1))
    parsed, parser = parse_in_chunks(stream, cuts)
    assert parsed == original
    assert not parser.pending
    assert parser.close() == []


def test_byte_at_a_time_with_multibyte_characters() -> None:
    stream = encode("ünï", "日本語 🎉\nzweite Zeile") + encode(None, "ok")
    parser = SSEParser()
    out = []
    for i in range(len(stream)):
        out += parser.feed(stream[i:i + 1])
    assert out == [Event("ünï", "日本語 🎉\nzweite Zeile"), Event(None, "ok")]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    parser = SSEParser()
    # If the LF after a chunk-final CR were an empty line of its own, the
    # event would be dispatched before its second data line.
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [Event(None, "a\nb")]
    assert parser.feed(b"\n") == []
    assert not parser.pending


def test_several_events_in_one_chunk() -> None:
    chunk = b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\ndata: 3\n\n"
    assert SSEParser().feed(chunk) == [Event("a", "1"), Event("b", "2"), Event(None, "3")]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b": keep-alive\n\ndata: x\n\n", [Event(None, "x")]),
        (b"data: x\n: comment inside an event\ndata: y\n\n", [Event(None, "x\ny")]),
        (b"id: 7\nretry: 1500\nevent: e\ndata: x\n\n", [Event("e", "x")]),
        (b"data:no-space\n\n", [Event(None, "no-space")]),
        (b"data:  two spaces\n\n", [Event(None, " two spaces")]),
        (b"data\n\n", [Event(None, "")]),
        (b"data: \n\n", [Event(None, "")]),
        (b"event: only-a-name\n\n", []),  # no data line: never dispatched
        (b"event:\ndata: x\n\n", [Event(None, "x")]),
        (b"unknown: field\ndata: x\n\n", [Event(None, "x")]),
        (b"\xef\xbb\xbfdata: bom\n\n", [Event(None, "bom")]),
        (b"data: bad \xff byte\n\n", [Event(None, "bad \ufffd byte")]),
        (b"event: a\revent: b\rdata: x\r\r", [Event("b", "x")]),
    ],
)
def test_field_rules(stream: bytes, expected: list[Event]) -> None:
    assert SSEParser().feed(stream) == expected


def test_id_and_retry_are_recorded() -> None:
    parser = SSEParser()
    parser.feed(b"id: 42\nretry: 250\nretry: soon\ndata: x\n\n")
    assert (parser.last_event_id, parser.retry) == ("42", 250)


@pytest.mark.parametrize(
    "tail",
    [b"data: {\"type\":\"mess", b"event: message_stop\ndata: {}\n", b"event: message_stop\n", b":partial comment"],
)
def test_truncated_tail_is_pending_and_not_returned(tail: bytes) -> None:
    parser = SSEParser()
    assert parser.feed(b"data: complete\n\n" + tail) == [Event(None, "complete")]
    assert parser.pending
    assert parser.close() == []
    assert parser.pending  # still tells the caller the stream was cut
    with pytest.raises(RuntimeError):
        parser.feed(b"\n\n")


def test_pending_only_while_an_event_is_incomplete() -> None:
    parser = SSEParser()
    assert not parser.pending
    parser.feed(b": ping\n")
    assert not parser.pending  # a complete comment line is not an event
    parser.feed(b"data: x")
    assert parser.pending
    parser.feed(b"\n")
    assert parser.pending
    assert parser.feed(b"\n") == [Event(None, "x")]
    assert not parser.pending


def test_encode_shapes() -> None:
    assert encode("message_stop", "{}") == b"event: message_stop\ndata: {}\n\n"
    assert encode(None, "[DONE]") == b"data: [DONE]\n\n"
    assert encode(None, "a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode("", "x") == b"data: x\n\n"
    assert encode(None, "") == b"data: \n\n"
    with pytest.raises(ValueError):
        encode("bad\nname", "x")


def test_long_line_trickled_byte_by_byte_is_linear() -> None:
    # 200 kB in one-byte chunks: a parser that rescans its buffer per chunk
    # would take minutes here.
    payload = "x" * 200_000
    stream = encode(None, payload)
    parser = SSEParser()
    out = []
    for i in range(len(stream)):
        out += parser.feed(stream[i:i + 1])
    assert out == [Event(None, payload)]
