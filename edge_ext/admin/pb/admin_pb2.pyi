from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProviderStatus(_message.Message):
    __slots__ = ("name", "kind", "cluster", "circuit_state", "models", "rate_limit", "requests", "tokens", "rate_limit_until")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_UNTIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    cluster: str
    circuit_state: str
    models: _containers.RepeatedScalarFieldContainer[str]
    rate_limit: str
    requests: RateLimitBudget
    tokens: RateLimitBudget
    rate_limit_until: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., cluster: _Optional[str] = ..., circuit_state: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., rate_limit: _Optional[str] = ..., requests: _Optional[_Union[RateLimitBudget, _Mapping]] = ..., tokens: _Optional[_Union[RateLimitBudget, _Mapping]] = ..., rate_limit_until: _Optional[float] = ...) -> None: ...

class RateLimitBudget(_message.Message):
    __slots__ = ("remaining", "limit", "reset_at")
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    RESET_AT_FIELD_NUMBER: _ClassVar[int]
    remaining: float
    limit: float
    reset_at: float
    def __init__(self, remaining: _Optional[float] = ..., limit: _Optional[float] = ..., reset_at: _Optional[float] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("version", "worker_index", "worker_pid", "providers", "streams_total")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKER_INDEX_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    version: str
    worker_index: int
    worker_pid: int
    providers: _containers.RepeatedCompositeFieldContainer[ProviderStatus]
    streams_total: int
    def __init__(self, version: _Optional[str] = ..., worker_index: _Optional[int] = ..., worker_pid: _Optional[int] = ..., providers: _Optional[_Iterable[_Union[ProviderStatus, _Mapping]]] = ..., streams_total: _Optional[int] = ...) -> None: ...

class GetSpendRequest(_message.Message):
    __slots__ = ("scope", "id")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    scope: str
    id: str
    def __init__(self, scope: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class BudgetStatus(_message.Message):
    __slots__ = ("scope", "id", "period", "period_key", "limit_usd", "spent_usd", "remaining_usd", "allowed", "message")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    REMAINING_USD_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    id: str
    period: str
    period_key: str
    limit_usd: str
    spent_usd: str
    remaining_usd: str
    allowed: bool
    message: str
    def __init__(self, scope: _Optional[str] = ..., id: _Optional[str] = ..., period: _Optional[str] = ..., period_key: _Optional[str] = ..., limit_usd: _Optional[str] = ..., spent_usd: _Optional[str] = ..., remaining_usd: _Optional[str] = ..., allowed: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class GetSpendResponse(_message.Message):
    __slots__ = ("budgets",)
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[BudgetStatus]
    def __init__(self, budgets: _Optional[_Iterable[_Union[BudgetStatus, _Mapping]]] = ...) -> None: ...

class SetBreakerRequest(_message.Message):
    __slots__ = ("provider", "state")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    state: str
    def __init__(self, provider: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class SetBreakerResponse(_message.Message):
    __slots__ = ("provider", "state")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    state: str
    def __init__(self, provider: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("applied", "version", "problems")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    version: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, applied: _Optional[bool] = ..., version: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class PurgeSemanticRequest(_message.Message):
    __slots__ = ("tenant", "model")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    model: str
    def __init__(self, tenant: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class PurgeSemanticResponse(_message.Message):
    __slots__ = ("worker_index", "local_removed", "shared_removed", "enabled", "shared_error")
    WORKER_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOCAL_REMOVED_FIELD_NUMBER: _ClassVar[int]
    SHARED_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SHARED_ERROR_FIELD_NUMBER: _ClassVar[int]
    worker_index: int
    local_removed: int
    shared_removed: int
    enabled: bool
    shared_error: str
    def __init__(self, worker_index: _Optional[int] = ..., local_removed: _Optional[int] = ..., shared_removed: _Optional[int] = ..., enabled: _Optional[bool] = ..., shared_error: _Optional[str] = ...) -> None: ...
