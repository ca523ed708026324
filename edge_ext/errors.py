"""The one error tree. Every error edge-ext answers with carries a stable code and an HTTP status.

Client-facing errors are rendered in the caller's API shape by ``edge_ext.providers`` (OpenAI
``{"error": {...}}`` or Anthropic ``{"type": "error", ...}``); the ``type`` here is OpenAI's
error type and each API shape maps it onward. Library errors are translated at the adapter
that calls the library, with ``raise ... from exc``.

    EdgeError                      500 internal_error
    ├── ConfigError                    config_invalid      a config refused before anything starts
    │   ├── ConfigInvalid                                  (config.loader: every problem, by key)
    │   ├── UnsafeStateDir                                 (config.instance: state directory open to others)
    │   ├── PricingError                                   (cost.pricing: a bad price table or override)
    │   └── DeployError                                    (deploy.common: not renderable for that target)
    ├── InternalError              500 internal_error      unexpected; the client gets an error id only
    ├── InvalidRequest             400 invalid_request
    │   ├── InvalidJSON                invalid_json
    │   ├── BodyNotAllowed             body_not_allowed
    │   └── PiiBlocked                 pii_detected
    ├── UnsupportedPath            404 unknown_url
    ├── MethodNotAllowed           405 method_not_allowed
    ├── ModelNotFound              404 model_not_found
    ├── BodyTooLarge               413 request_too_large
    ├── Unauthorized               401 invalid_api_key
    │   └── MissingKey                 missing_api_key
    ├── Forbidden                  403 model_not_allowed
    ├── RateLimited                429 rate_limit_exceeded
    │   ├── BudgetExceeded             budget_exceeded
    │   └── TokenRateExceeded          tokens_per_minute_exceeded
    ├── ProviderUnavailable        503 provider_unavailable
    ├── ProviderKeyMissing         503 provider_key_missing
    ├── FailoverRefused            502 failover_refused
    └── StoreUnavailable           503 store_unavailable
        ├── BudgetStoreUnavailable     budget_store_unavailable
        └── KeyStoreUnavailable        key_store_unavailable

Internal exceptions, outside the tree on purpose: each is caught where it is raised or by its one
caller, and never reaches a client as itself.

* ``cache.shared.StoreError``: an L2 store failed; the tiered cache makes it a miss. The semantic
  cache's shared tier raises it from a failed purge (the admin call reports it).
* ``semantic.embeddings.EmbeddingFailed``: an embedding that could not be had; the semantic lookup
  is a miss.
* ``cache.disk.UnsafeRow``: a disk cache row this cache never writes; read as a StoreError.
* ``cost.ledger_api.LedgerUnavailable``: the Redis ledger is away and budgets fail closed; the
  budget step raises BudgetStoreUnavailable from it.
* ``routing.record_file.RecordFileFull``: a shared state file has no room; breakers past it are
  kept in the process's memory, and a provider past it stays unmeasured.
* ``redact.scanning.TooManySecrets``, ``redact.document.ScanLimitExceeded`` and ``KeyCollision``:
  the prompt policy (policy.pii) raises PiiBlocked or BodyTooLarge from them.
* ``translate.common.TranslationError``: a body one API cannot express in the other; a request
  becomes InvalidRequest (policy.exchange), an answer a bad-upstream error (policy.response).
* ``apis.json_body._DuplicateKey``: a repeated JSON key; raised as InvalidJSON.
* ``policy.state.IllegalTransition``: a phase the stream's lifecycle does not allow next (a peer
  repeating request headers); the servicer answers it as an unexpected error (500, an error id),
  and only Envoy reaches the servicer.
* ``mock.faults.FaultError``, ``mock.replies.KnobError`` and ``mock.openai_api.Invalid`` /
  ``mock.anthropic_api.Invalid``: the bundled mock provider's own errors, answered in the shape
  of the provider it imitates, never the edge's.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error edge-ext raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    type: str = "api_error"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, type: str | None = None,
                          **kwargs: object) -> None:
        # A subclass names in its class line what it changes; the rest it keeps from its parent, so
        # the tree below reads as the table in the module docstring.
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code
        if type is not None:
            cls.type = type

    def __init__(self, message: str, *, param: str | None = None, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers


class ConfigError(EdgeError, code="config_invalid"): ...


class InternalError(EdgeError, code="internal_error"):
    """Something edge-ext did not expect. The client gets this id, never the exception; the one
    log line about it carries the same id."""

    def __init__(self, error_id: str):
        super().__init__(f"internal error {error_id}; the operator can look it up in the edge's log")
        self.error_id = error_id


# One line an error: the parent, then what it changes (status, code, OpenAI error type).
class InvalidRequest(EdgeError,      status=400, code="invalid_request", type="invalid_request_error"): ...
class InvalidJSON(InvalidRequest,                code="invalid_json"): ...
class PiiBlocked(InvalidRequest,                 code="pii_detected"): ...
class UnsupportedPath(EdgeError,     status=404, code="unknown_url", type="invalid_request_error"): ...
class MethodNotAllowed(EdgeError,    status=405, code="method_not_allowed", type="invalid_request_error"): ...
class ModelNotFound(EdgeError,       status=404, code="model_not_found", type="invalid_request_error"): ...
class BodyTooLarge(EdgeError,        status=413, code="request_too_large", type="invalid_request_error"): ...
class Unauthorized(EdgeError,        status=401, code="invalid_api_key", type="authentication_error"): ...
class MissingKey(Unauthorized,                   code="missing_api_key"): ...
class Forbidden(EdgeError,           status=403, code="model_not_allowed", type="permission_error"): ...
class RateLimited(EdgeError,         status=429, code="rate_limit_exceeded", type="rate_limit_error"): ...
class BudgetExceeded(RateLimited,                code="budget_exceeded"): ...
class TokenRateExceeded(RateLimited,             code="tokens_per_minute_exceeded"): ...
class ProviderUnavailable(EdgeError, status=503, code="provider_unavailable"): ...
class ProviderKeyMissing(EdgeError,  status=503, code="provider_key_missing"): ...


class BodyNotAllowed(InvalidRequest, code="body_not_allowed"):
    """A request body sent to an endpoint that takes none (health probes, model lists)."""


class FailoverRefused(EdgeError, status=502, code="failover_refused"):
    """A retry attempt could not be re-shaped for the next provider (its API cannot express the
    request): that attempt is answered here instead of sending it unchanged to the wrong host."""


class StoreUnavailable(EdgeError, status=503, code="store_unavailable"):
    """A shared store the request depends on (budgets failing closed, Redis-held keys) is down."""


class BudgetStoreUnavailable(StoreUnavailable, code="budget_store_unavailable"): ...
class KeyStoreUnavailable(StoreUnavailable,    code="key_store_unavailable"): ...
