"""Error bodies and per-response headers in each provider's own dialect.

Clients (and edge-ext's own error handling) branch on these shapes, so they
follow what the services send:

* OpenAI / Azure OpenAI: ``{"error": {"message", "type", "param", "code"}}``
  with an ``x-request-id`` header (Azure adds ``apim-request-id``).
* Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
  with a ``request-id`` header; in a stream, an ``event: error`` frame.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from aiohttp import web

from . import wire

# status -> (type, code, message) as OpenAI returns them for that status.
_OPENAI_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("request_forbidden", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    409: ("invalid_request_error", None, "Conflict."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM). Please try again later.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}

# Anthropic's documented error types by HTTP status (529 is its "overloaded").
_ANTHROPIC_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}


class ErrorFields(TypedDict, total=False):
    """What an error says besides its status and message, passed through to ``error_body``
    unchanged; one left out is the dialect's default for the status."""

    type_: str | None
    param: str | None
    code: str | None


class Dialect:
    """Shapes errors and correlation headers for one API family."""

    name = "base"

    def new_request_id(self) -> str:
        return wire.new_id("req_", 24)

    def base_headers(self, request_id: str) -> dict[str, str]:
        raise NotImplementedError

    def error_body(
        self,
        status: int,
        message: str | None = None,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        request_id: str = "",
    ) -> dict[str, object]:
        raise NotImplementedError

    def stream_error_frame(self, status: int, request_id: str = "") -> bytes:
        raise NotImplementedError

    def error_response(self, status: int, message: str | None = None, *, request_id: str = "",
                       extra_headers: dict[str, str] | None = None, **fields: Unpack[ErrorFields]) -> web.Response:
        rid = request_id or self.new_request_id()
        body = self.error_body(status, message, request_id=rid, **fields)
        headers = self.base_headers(rid)
        if extra_headers:
            headers.update(extra_headers)
        return wire.json_response(status, body, headers)


class OpenAIDialect(Dialect):
    name = "openai"

    def new_request_id(self) -> str:
        return wire.new_id("req_", 32)

    def base_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "openai-version": "2020-10-01", "openai-processing-ms": "1"}

    def error_body(self, status, message=None, *, type_=None, param=None, code=None, request_id=""):
        default_type, default_code, default_message = _OPENAI_DEFAULTS.get(
            status,
            ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}"),
        )
        return {
            "error": {
                "message": message or default_message,
                "type": type_ or default_type,
                "param": param,
                "code": code if code is not None or message else default_code,
            }
        }

    def stream_error_frame(self, status: int, request_id: str = "") -> bytes:
        # OpenAI reports a failure after the 200 header as an unnamed data
        # event whose JSON has a top-level "error" object.
        return wire.sse_data(self.error_body(status, request_id=request_id))


class AzureDialect(OpenAIDialect):
    name = "azure"

    def base_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "apim-request-id": request_id, "x-ms-region": "mock-region"}

    def error_body(self, status, message=None, *, type_=None, param=None, code=None, request_id=""):
        if status == 401 and message is None:
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
                "a valid key for an active subscription and use a correct regional API endpoint for your resource."
            )
            code = "401"
        return super().error_body(status, message, type_=type_, param=param, code=code, request_id=request_id)


class AnthropicDialect(Dialect):
    name = "anthropic"

    def new_request_id(self) -> str:
        return wire.new_id("req_011C", 20)

    def base_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def error_body(self, status, message=None, *, type_=None, param=None, code=None, request_id=""):
        default_type, default_message = _ANTHROPIC_DEFAULTS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": type_ or default_type, "message": message or default_message},
        }
        if request_id:
            body["request_id"] = request_id
        return body

    def stream_error_frame(self, status: int, request_id: str = "") -> bytes:
        body = self.error_body(status)
        return wire.sse_event("error", body)


OPENAI = OpenAIDialect()
AZURE = AzureDialect()
ANTHROPIC = AnthropicDialect()
