"""Error bodies in each API's dialect, and translation between them.

OpenAI: ``{"error": {"message", "type", "param", "code"}}``.
Anthropic: ``{"type": "error", "error": {"type", "message"}}``.

The type vocabulary on the OpenAI side is edge-ext's own (see
``edge_ext.errors``): the Anthropic names where OpenAI has an equivalent
class of error, with OpenAI-style ``code`` values for detail. OpenAI itself
is loose about types (a bad API key comes back as ``invalid_request_error``
with code ``invalid_api_key``), so OpenAI -> Anthropic refines the generic
types by HTTP status, which is what Anthropic's types are tied to.
"""

from __future__ import annotations

import json
from typing import Any

from .common import dumps

__all__ = [
    "openai_error",
    "anthropic_error",
    "openai_error_from_anthropic",
    "anthropic_error_from_openai",
    "openai_error_object",
    "anthropic_error_object",
    "openai_from_anthropic_error",
    "anthropic_from_openai_error",
    "openai_type_for_status",
    "anthropic_type_for_status",
]

_ANTHROPIC_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Statuses whose Anthropic type is more specific than invalid_request_error.
_REFINED_4XX = frozenset({401, 402, 403, 404, 413, 429})

_OPENAI_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}

# Anthropic type -> (OpenAI type, OpenAI code).
_TO_OPENAI: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("not_found_error", None),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("api_error", None),
    "overloaded_error": ("api_error", "overloaded"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "timeout_error": ("api_error", "timeout"),
}

# OpenAI type -> Anthropic type, for the types that say more than the status.
_TO_ANTHROPIC = {
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "request_forbidden": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "overloaded_error": "overloaded_error",
}
_ANTHROPIC_BY_CODE = {
    "invalid_api_key": "authentication_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
    "request_too_large": "request_too_large",
    "rate_limit_exceeded": "rate_limit_error",
}


def anthropic_type_for_status(status: int) -> str:
    if status in _ANTHROPIC_BY_STATUS:
        return _ANTHROPIC_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def openai_type_for_status(status: int) -> str:
    if status in _OPENAI_BY_STATUS:
        return _OPENAI_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _generic_message(status: int) -> str:
    return f"Upstream provider returned HTTP {status}."


def openai_error_object(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def anthropic_error_object(message: str, type: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type, "message": message}}


def openai_error(status: int, message: str, type: str | None = None, code: str | None = None) -> bytes:
    """An OpenAI error body; ``type`` defaults to the one implied by ``status``."""
    return dumps(openai_error_object(message, type or openai_type_for_status(status), code)).encode("utf-8")


def anthropic_error(status: int, message: str, type: str | None = None) -> bytes:
    """An Anthropic error body; ``type`` defaults to the one implied by ``status``."""
    return dumps(anthropic_error_object(message, type or anthropic_type_for_status(status))).encode("utf-8")


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def openai_from_anthropic_error(status: int, error: Any) -> dict[str, Any]:
    """OpenAI error object for an Anthropic ``error`` object (also used for
    the ``event: error`` frame of a stream)."""
    if not isinstance(error, dict):
        return openai_error_object(_generic_message(status), openai_type_for_status(status))
    kind = error.get("type")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = _generic_message(status)
    if kind in _TO_OPENAI:
        openai_type, code = _TO_OPENAI[kind]
    else:
        openai_type, code = openai_type_for_status(status), None
    return openai_error_object(message, openai_type, code)


def anthropic_from_openai_error(status: int, error: Any) -> dict[str, Any]:
    """Anthropic error object for an OpenAI ``error`` value (an object, or a
    bare string as some OpenAI-compatible servers send)."""
    if isinstance(error, str) and error:
        return anthropic_error_object(error, anthropic_type_for_status(status))
    if not isinstance(error, dict):
        return anthropic_error_object(_generic_message(status), anthropic_type_for_status(status))
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = _generic_message(status)
    openai_type = error.get("type")
    kind = _TO_ANTHROPIC.get(openai_type) or _ANTHROPIC_BY_CODE.get(error.get("code"))
    if kind is None:
        # OpenAI's generic types are refined by status: it answers a bad key
        # (401) or an unknown model (404) with invalid_request_error, and
        # both 500 and 503 with server_error.
        status_kind = anthropic_type_for_status(status)
        if openai_type == "invalid_request_error" and status not in _REFINED_4XX:
            kind = "invalid_request_error"
        elif openai_type in ("api_error", "server_error") and status < 500:
            kind = "api_error"
        else:
            kind = status_kind
    return anthropic_error_object(message, kind)


def _error_value(body: bytes) -> Any:
    parsed = _loads(body)
    if not isinstance(parsed, dict):
        return None
    if "error" in parsed:
        return parsed["error"]
    # Some compatible servers send the error object unwrapped.
    return parsed if isinstance(parsed.get("message"), str) else None


def openai_error_from_anthropic(status: int, body: bytes) -> bytes:
    error = _error_value(body)
    return dumps(openai_from_anthropic_error(status, error)).encode("utf-8")


def anthropic_error_from_openai(status: int, body: bytes) -> bytes:
    error = _error_value(body)
    return dumps(anthropic_from_openai_error(status, error)).encode("utf-8")
