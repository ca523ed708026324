"""The one error tree. Every error edge-ext answers with carries a stable code and an HTTP status.

Client-facing errors are rendered in the caller's API shape by ``edge_ext.providers`` (OpenAI
``{"error": {...}}`` or Anthropic ``{"type": "error", ...}``); the ``type`` here is OpenAI's
error type and each API shape maps it onward. Library errors are translated at the adapter
that calls the library, with ``raise ... from exc``.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error edge-ext raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    type: str = "api_error"

    def __init__(self, message: str, *, param: str | None = None, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers


class ConfigError(EdgeError):
    code = "config_invalid"


class InternalError(EdgeError):
    """Something edge-ext did not expect. The client gets this id, never the exception; the one
    log line about it carries the same id."""

    code = "internal_error"

    def __init__(self, error_id: str):
        super().__init__(f"internal error {error_id}; the operator can look it up in the edge's log")
        self.error_id = error_id


class InvalidRequest(EdgeError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class BodyNotAllowed(InvalidRequest):
    """A request body sent to an endpoint that takes none (health probes, model lists)."""

    code = "body_not_allowed"


class UnsupportedPath(EdgeError):
    status = 404
    code = "unknown_url"
    type = "invalid_request_error"


class MethodNotAllowed(EdgeError):
    status = 405
    code = "method_not_allowed"
    type = "invalid_request_error"


class ModelNotFound(EdgeError):
    status = 404
    code = "model_not_found"
    type = "invalid_request_error"


class BodyTooLarge(EdgeError):
    status = 413
    code = "request_too_large"
    type = "invalid_request_error"


class Unauthorized(EdgeError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class Forbidden(EdgeError):
    status = 403
    code = "model_not_allowed"
    type = "permission_error"


class RateLimited(EdgeError):
    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"


class ProviderUnavailable(EdgeError):
    status = 503
    code = "provider_unavailable"
    type = "api_error"


class FailoverRefused(EdgeError):
    """A retry attempt could not be re-shaped for the next provider (its API cannot express the
    request): that attempt is answered here instead of sending it unchanged to the wrong host."""

    status = 502
    code = "failover_refused"


class ProviderKeyMissing(EdgeError):
    status = 503
    code = "provider_key_missing"
    type = "api_error"


class MissingKey(Unauthorized):
    code = "missing_api_key"


class PiiBlocked(InvalidRequest):
    code = "pii_detected"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class TokenRateExceeded(RateLimited):
    code = "tokens_per_minute_exceeded"


class StoreUnavailable(EdgeError):
    """A shared store the request depends on (budgets failing closed, Redis-held keys) is down."""

    status = 503
    code = "store_unavailable"
    type = "api_error"


class BudgetStoreUnavailable(StoreUnavailable):
    code = "budget_store_unavailable"


class KeyStoreUnavailable(StoreUnavailable):
    code = "key_store_unavailable"
