"""Error bodies: builders and translation both ways, including garbage in."""

from __future__ import annotations

import json

import anthropic.types
import pytest

from edge_ext.translate import (
    anthropic_error,
    anthropic_error_from_openai,
    openai_error,
    openai_error_from_anthropic,
)


def claude_error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}).encode()


def openai_body(kind: str, message: str, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


# (status, Anthropic type) -> (OpenAI type, OpenAI code)
A2O = [
    (400, "invalid_request_error", "invalid_request_error", None),
    (401, "authentication_error", "authentication_error", "invalid_api_key"),
    (403, "permission_error", "permission_error", None),
    (404, "not_found_error", "not_found_error", None),
    (429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
    (500, "api_error", "api_error", None),
    (529, "overloaded_error", "api_error", "overloaded"),
    (402, "billing_error", "insufficient_quota", "insufficient_quota"),
    (413, "request_too_large", "invalid_request_error", "request_too_large"),
    (504, "timeout_error", "api_error", "timeout"),
    (418, "brand_new_error", "invalid_request_error", None),
]


@pytest.mark.parametrize(("status", "anthropic_type", "openai_type", "code"), A2O)
def test_openai_error_from_anthropic(status: int, anthropic_type: str, openai_type: str, code: str | None) -> None:
    out = json.loads(openai_error_from_anthropic(status, claude_error(anthropic_type, "the message")))
    assert out == {"error": {"message": "the message", "type": openai_type, "param": None, "code": code}}


# (status, OpenAI type, code) -> Anthropic type. OpenAI's own bodies are
# loose (a bad key is an invalid_request_error), so the status refines them.
O2A = [
    (400, "invalid_request_error", None, "invalid_request_error"),
    (401, "invalid_request_error", "invalid_api_key", "authentication_error"),
    (401, "authentication_error", None, "authentication_error"),
    (403, "request_forbidden", "unsupported_country_region_territory", "permission_error"),
    (403, "permission_error", None, "permission_error"),
    (404, "invalid_request_error", "model_not_found", "not_found_error"),
    (404, "not_found_error", None, "not_found_error"),
    (429, "requests", "rate_limit_exceeded", "rate_limit_error"),
    (429, "rate_limit_error", None, "rate_limit_error"),
    (429, "insufficient_quota", "insufficient_quota", "billing_error"),
    (500, "server_error", None, "api_error"),
    (500, "api_error", None, "api_error"),
    (503, "server_error", None, "overloaded_error"),
    (500, "api_error", "overloaded", "overloaded_error"),
    (504, "server_error", None, "timeout_error"),
]


@pytest.mark.parametrize(("status", "openai_type", "code", "anthropic_type"), O2A)
def test_anthropic_error_from_openai(status: int, openai_type: str, code: str | None, anthropic_type: str) -> None:
    out = json.loads(anthropic_error_from_openai(status, openai_body(openai_type, "the message", code)))
    assert out == {"type": "error", "error": {"type": anthropic_type, "message": "the message"}}
    anthropic.types.ErrorResponse.model_validate(out)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
     (404, "not_found_error"), (429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error"),
     (500, "invalid_request_error"), (400, "api_error")],
)
def test_types_survive_a_round_trip(status: int, kind: str) -> None:
    there = openai_error_from_anthropic(status, claude_error(kind, "m"))
    back = json.loads(anthropic_error_from_openai(status, there))
    assert back == {"type": "error", "error": {"type": kind, "message": "m"}}


GARBAGE = [b"", b"<html>502 Bad Gateway</html>", b"[1,2]", b'{"error": 5}', b"\xff\xfe"]


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize(
    ("status", "openai_type", "anthropic_type"),
    [(400, "invalid_request_error", "invalid_request_error"), (401, "authentication_error", "authentication_error"),
     (404, "not_found_error", "not_found_error"), (429, "rate_limit_error", "rate_limit_error"),
     (502, "api_error", "api_error"), (503, "api_error", "overloaded_error")],
)
def test_unparseable_bodies_get_a_generic_error_of_the_status_type(
    body: bytes, status: int, openai_type: str, anthropic_type: str
) -> None:
    message = f"Upstream provider returned HTTP {status}."
    assert json.loads(openai_error_from_anthropic(status, body)) == {
        "error": {"message": message, "type": openai_type, "param": None, "code": None}}
    assert json.loads(anthropic_error_from_openai(status, body)) == {
        "type": "error", "error": {"type": anthropic_type, "message": message}}


def test_compatible_server_shapes() -> None:
    # A bare string error, and an unwrapped error object.
    assert json.loads(anthropic_error_from_openai(429, b'{"error": "slow down"}'))["error"] == {
        "type": "rate_limit_error", "message": "slow down"}
    assert json.loads(anthropic_error_from_openai(400, b'{"message": "bad field", "type": "invalid_request_error"}'))[
        "error"] == {"type": "invalid_request_error", "message": "bad field"}


def test_builders() -> None:
    assert json.loads(openai_error(400, "Bad.", "invalid_request_error", "invalid_json")) == {
        "error": {"message": "Bad.", "type": "invalid_request_error", "param": None, "code": "invalid_json"}}
    assert json.loads(openai_error(429, "Slow.", "rate_limit_error")) == {
        "error": {"message": "Slow.", "type": "rate_limit_error", "param": None, "code": None}}
    assert json.loads(anthropic_error(529, "Busy.")) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "Busy."}}
    assert json.loads(anthropic_error(401, "Who?", "permission_error")) == {
        "type": "error", "error": {"type": "permission_error", "message": "Who?"}}
    assert json.loads(anthropic_error(418, "Teapot.")) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "Teapot."}}
    assert json.loads(anthropic_error(599, "?"))["error"]["type"] == "api_error"
    # Non-ASCII stays readable UTF-8.
    assert "é" in openai_error(400, "é", "invalid_request_error").decode("utf-8")
