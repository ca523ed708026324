"""OpenAI's embeddings request (``POST /v1/embeddings``) as clients send it.

Checked like a chat body (edge_ext.apis.json_body: duplicate keys, lone surrogates) and then
field by field, so that what reaches a provider is what OpenAI itself would accept: ``input`` a
non-empty string, an array of non-empty strings, an array of token ids or an array of such
arrays, at most ``MAX_INPUTS`` of them; ``encoding_format`` ``float`` or ``base64``;
``dimensions`` a positive integer. An embedding never streams: ``stream`` set to true is refused
(the edge reads the answer whole). Other fields pass, as on the chat endpoints.
"""

from __future__ import annotations

from typing import Any

from edge_ext.apis.json_body import json_object, required_model
from edge_ext.apis.limits import RequestLimits
from edge_ext.errors import InvalidRequest
from edge_ext.message import ChatRequest

OPERATION = "embeddings"
# OpenAI's own cap on the inputs of one request.
MAX_INPUTS = 2048
ENCODINGS = ("float", "base64")


def _token_ids(value: list[Any], where: str) -> None:
    if not value:
        raise InvalidRequest(f"'{where}' is an empty array of token ids", param="input")
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise InvalidRequest(f"'{where}' must hold non-negative integer token ids", param="input")


def check_input(value: Any) -> int:
    """The number of inputs ``value`` holds, or InvalidRequest naming what is wrong."""
    if value is None:
        raise InvalidRequest("'input' is required: a string or an array of strings or token ids", param="input")
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("'input' must not be an empty string", param="input")
        return 1
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' must be a non-empty string or a non-empty array", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' has {len(value)} items; the limit is {MAX_INPUTS}", param="input")
    first = value[0]
    if isinstance(first, str):
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise InvalidRequest(f"'input[{index}]' must be a non-empty string like the other items", param="input")
        return len(value)
    if isinstance(first, list):
        for index, item in enumerate(value):
            if not isinstance(item, list):
                raise InvalidRequest(f"'input[{index}]' must be an array of token ids like the other items", param="input")
            _token_ids(item, f"input[{index}]")
        return len(value)
    _token_ids(value, "input")
    return 1


def _options(body: dict[str, Any]) -> None:
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ENCODINGS:
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise InvalidRequest("'dimensions' must be a positive integer", param="dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    stream = body.get("stream")
    if stream is not None and stream is not False:
        raise InvalidRequest("embeddings are not streamed: leave 'stream' out", param="stream")


def parse(raw: bytes, limits: RequestLimits | None = None) -> ChatRequest:
    """An embeddings request, in OpenAI's shape (its errors too)."""
    body = json_object(raw)
    model = required_model(body)
    check_input(body.get("input"))
    _options(body)
    return ChatRequest(body=body, raw=raw, model=model, stream=False, api="openai", operation=OPERATION)
