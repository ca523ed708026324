"""Decode a request body into a JSON object, with errors that name the problem."""

from __future__ import annotations

import json
from typing import Any

from edge_ext.errors import InvalidJSON, InvalidRequest


def json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body: Any = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidJSON("the request body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise InvalidJSON("the request body is nested too deeply") from exc
    except ValueError as exc:
        raise InvalidJSON(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def required_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    return model


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return stream


def non_empty_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")


def chat_basics(raw: bytes) -> tuple[dict[str, Any], str, bool]:
    """What both chat APIs require: a JSON object with a model, a boolean stream, messages."""
    body = json_object(raw)
    model = required_model(body)
    stream = stream_flag(body)
    non_empty_messages(body)
    return body, model, stream
