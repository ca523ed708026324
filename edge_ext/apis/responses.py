"""The OpenAI Responses API shape as clients speak it (``POST /v1/responses``).

Only the fields the edge itself reads are checked (model, stream, input and its items' text,
the output cap, the state fields that decide caching); the rest pass through to the provider,
which names what it does not support. Errors and model lists are OpenAI's.
"""

from __future__ import annotations

from typing import Any

from edge_ext.apis.json_body import json_object, required_model, stream_flag
from edge_ext.apis.limits import RequestLimits
from edge_ext.apis.openai import OPENAI
from edge_ext.apis.schema import ANY_OBJECT, BOOL, STR, Array, Either, Obj, Scalar, Tagged, check, openai_style
from edge_ext.errors import BodyTooLarge, EdgeError, InvalidRequest
from edge_ext.message import ChatRequest

NAME = "responses"

# What the request may name instead of ``input``: a stored prompt template, or the state a
# stored response or conversation carries.
_INPUT_SOURCES = ("previous_response_id", "conversation", "prompt")

_NUMBER = Scalar((int, float), "a number")
_PART = Tagged({
    "input_text": Obj({"text": STR}),
    "output_text": Obj({"text": STR}),
    "refusal": Obj({"refusal": STR}),
    "input_image": Obj({"image_url": STR, "file_id": STR, "detail": STR}),
    "input_file": Obj({"file_id": STR, "file_data": STR, "filename": STR, "file_url": STR}),
    "input_audio": Obj({"input_audio": Obj({"data": STR, "format": STR})}),
})
# An item without ``type`` is a message (the API's "easy input message").
_ITEM = Tagged({
    "message": Obj({"role": STR, "content": Either({str: STR, list: Array(_PART)}, "a string or an array")}),
    "function_call": Obj({"call_id": STR, "name": STR, "arguments": STR}),
    "function_call_output": Obj({"call_id": STR, "output": Either({str: STR, list: Array(ANY_OBJECT)},
                                                                  "a string or an array")}),
    "item_reference": Obj({"id": STR}),
}, default="message")
SCHEMA = Obj({
    "input": Either({str: STR, list: Array(_ITEM)}, "a string or an array of input items"),
    "instructions": STR,
    "previous_response_id": STR,
    "conversation": Either({str: STR, dict: Obj({"id": STR})}, "a string or an object"),
    "store": BOOL,
    "background": BOOL,
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "tools": Array(ANY_OBJECT),
    "tool_choice": Either({str: STR, dict: ANY_OBJECT}, "a string or an object"),
    "parallel_tool_calls": BOOL,
    "text": ANY_OBJECT,
    "reasoning": ANY_OBJECT,
    "metadata": ANY_OBJECT,
    "include": Array(STR),
    "user": STR,
})


def _range(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be a number between {low:g} and {high:g}", param=name)


def _input_items(body: dict[str, Any]) -> list[Any]:
    given = body.get("input")
    if given is None:
        if not any(body.get(name) is not None for name in _INPUT_SOURCES):
            raise InvalidRequest("'input' is required (a string or an array of input items) unless the request "
                                 "names a previous_response_id, conversation or prompt", param="input")
        return []
    if isinstance(given, str):
        return []
    if not isinstance(given, list):
        raise InvalidRequest("'input' must be a string or an array of input items", param="input")
    return given


def _check_shape(items: list[Any], limits: RequestLimits) -> None:
    """The chat caps, applied to input items and their content parts."""
    if len(items) > limits.max_messages:
        raise BodyTooLarge(f"'input' has {len(items)} items; the limit is {limits.max_messages} "
                           "(processor.max_messages)", param="input")
    parts = sum(len(item["content"]) for item in items
                if isinstance(item, dict) and isinstance(item.get("content"), list))
    if parts > limits.max_content_parts:
        raise BodyTooLarge(f"the request has more than {limits.max_content_parts} content parts "
                           "(processor.max_content_parts)", param="input")


def stateful(body: dict[str, Any]) -> bool:
    """Whether the answer depends on, or creates, state kept by the provider: a stored response
    (``store`` is true unless the client says false, as OpenAI's default is), a previous
    response, a conversation, or a background run. Such a request is never answered from cache."""
    return (body.get("store") is not False or any(body.get(name) is not None for name in ("previous_response_id",
            "conversation")) or body.get("background") is True)


class ResponsesClientAPI:
    name = NAME

    def parse(self, raw: bytes, limits: RequestLimits | None = None) -> ChatRequest:
        body = json_object(raw)
        model = required_model(body)
        stream = stream_flag(body)
        items = _input_items(body)
        if limits is not None:
            _check_shape(items, limits)  # before the walks it bounds
        check(body, SCHEMA, openai_style)
        _range(body, "temperature", 0, 2)
        _range(body, "top_p", 0, 1)
        cap = body.get("max_output_tokens")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidRequest("'max_output_tokens' must be a positive integer", param="max_output_tokens")
        return ChatRequest(body=body, raw=raw, model=model, stream=stream, api=self.name)

    def error_body(self, err: EdgeError) -> bytes:
        return OPENAI.error_body(err)

    def models_body(self, models: tuple[str, ...], created: int) -> bytes:
        return OPENAI.models_body(models, created)


RESPONSES = ResponsesClientAPI()
