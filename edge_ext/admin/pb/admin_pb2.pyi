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
    __slots__ = ("name", "kind", "cluster", "circuit_state", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    cluster: str
    circuit_state: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., cluster: _Optional[str] = ..., circuit_state: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

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
