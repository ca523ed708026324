"""OpenAI Responses API streams: passed through, folded into the JSON answer, replayed.

A Responses stream names every event (``event: response.output_text.delta``) and repeats the
name as the payload's ``type``. It ends with ``response.completed`` (or ``response.incomplete``,
an answer cut by ``max_output_tokens``; ``response.failed``, a failed one), whose ``response``
is the whole answer as the non-streamed call returns it, usage included; or with an ``error``
event. Nothing follows any of these.

* :class:`ResponsesStreamPassthrough` re-emits events untouched; a stream that ends without one
  of them was cut, and the client gets an ``error`` event instead of a stream that just stops.
* :class:`ResponsesAccumulator` keeps the ``response`` of ``response.completed``: the answer the
  cache stores (only a completed one).
* :func:`replay_responses` turns a stored answer back into the event sequence the API sends.

Pure: events come parsed (:mod:`edge_ext.sse`), bytes go out.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

from ..sse import Event, encode
from .common import EndsOnce, event_json, sse_event
from .replay import CHARS_PER_WORD, _check, _slices, split_words
from .stream_to_openai import TRUNCATED_MESSAGE

__all__ = ["ResponsesStreamPassthrough", "ResponsesAccumulator", "replay_responses", "responses_terminal",
           "event_type"]

COMPLETED = "response.completed"
# Events after which the API sends nothing more.
TERMINAL = frozenset({COMPLETED, "response.incomplete", "response.failed", "error"})
# Of those, the ones that end an answer the provider finished (and reported its usage in).
CLEAN_END = frozenset({COMPLETED, "response.incomplete"})


def event_type(event: Event) -> str | None:
    """The event's type: its ``event:`` name, or (from a server that sends none) the payload's
    ``type``, parsed only when the data may name a terminal event."""
    if event.event:
        return event.event
    data = event.data
    if "response." not in data and "error" not in data:
        return None
    payload = event_json(event)
    kind = payload.get("type") if payload is not None else None
    return kind if isinstance(kind, str) else None


def responses_terminal(event: Event) -> bool:
    """The provider's stream ended as the API ends an answer (for the codec's clean flag)."""
    return event_type(event) in CLEAN_END


def truncated_responses_error(sequence_number: int) -> bytes:
    return sse_event("error", {"type": "error", "code": "stream_truncated", "message": TRUNCATED_MESSAGE,
                               "param": None, "sequence_number": sequence_number})


class ResponsesStreamPassthrough(EndsOnce):
    """Responses -> Responses: events re-emitted byte for byte; a cut stream ends in an error."""

    def __init__(self) -> None:
        super().__init__()
        self._events = 0  # the next sequence number, as far as the client saw

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        self._events += 1
        self.done = event_type(event) in TERMINAL
        return encode(event.event, event.data)

    def _truncated(self) -> bytes:
        return truncated_responses_error(self._events)


class ResponsesAccumulator:
    """Responses events -> the ``response`` object of ``response.completed``."""

    __slots__ = ("_result", "_ended")

    def __init__(self) -> None:
        self._result: dict[str, Any] | None = None
        self._ended = False

    @property
    def complete(self) -> bool:
        return self._result is not None

    def feed(self, event: Event) -> None:
        if self._ended:
            return
        kind = event_type(event)
        if kind not in TERMINAL:
            return
        self._ended = True
        payload = event_json(event) if kind == COMPLETED else None
        response = payload.get("response") if payload is not None else None
        if isinstance(response, dict) and response.get("status") == "completed":
            self._result = response

    def result(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._result)


def _item_events(index: int, item: dict[str, Any], chunk_words: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The events of one output item, in order, without sequence numbers."""
    kind, item_id = item.get("type"), item.get("id")
    where = {"item_id": item_id, "output_index": index}
    if kind == "message":
        parts = item.get("content") if isinstance(item.get("content"), list) else []
        yield "response.output_item.added", {"output_index": index,
                                             "item": {**item, "status": "in_progress", "content": []}}
        for position, part in enumerate(parts):
            at = {**where, "content_index": position}
            if not isinstance(part, dict) or part.get("type") != "output_text":
                yield "response.content_part.added", {**at, "part": part}
                yield "response.content_part.done", {**at, "part": part}
                continue
            text = part.get("text") if isinstance(part.get("text"), str) else ""
            yield "response.content_part.added", {**at, "part": {**part, "text": ""}}
            for piece in split_words(text, chunk_words):
                yield "response.output_text.delta", {**at, "delta": piece, "logprobs": []}
            yield "response.output_text.done", {**at, "text": text, "logprobs": []}
            yield "response.content_part.done", {**at, "part": part}
    elif kind == "function_call":
        arguments = item.get("arguments") if isinstance(item.get("arguments"), str) else ""
        yield "response.output_item.added", {"output_index": index,
                                             "item": {**item, "status": "in_progress", "arguments": ""}}
        for piece in _slices(arguments, CHARS_PER_WORD * chunk_words):
            yield "response.function_call_arguments.delta", {**where, "delta": piece}
        yield "response.function_call_arguments.done", {**where, "arguments": arguments}
    else:
        # Reasoning and tool items the edge does not take apart come whole.
        yield "response.output_item.added", {"output_index": index, "item": item}
    yield "response.output_item.done", {"output_index": index, "item": item}


def replay_responses(response: dict[str, Any], *, chunk_words: int = 8) -> bytes:
    """A stored ``response`` object as the stream the API would have sent for it."""
    _check(chunk_words)
    output = response.get("output") if isinstance(response.get("output"), list) else []
    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [("response.created", {"response": opening}),
                                                ("response.in_progress", {"response": opening})]
    for index, item in enumerate(output):
        if isinstance(item, dict):
            events.extend(_item_events(index, item, chunk_words))
    events.append((COMPLETED, {"response": response}))
    out = bytearray()
    for number, (name, fields) in enumerate(events):
        out += sse_event(name, {"type": name, "sequence_number": number, **fields})
    return bytes(out)
