"""The policy: decides, for each ext_proc message of one request, what Envoy should do.

Pure: no gRPC, no protos, time from an injected clock. The servicer in edge_ext.extproc turns
its decisions into ProcessingResponses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_ext.apis import openai as openai_api
from edge_ext.config.models import Config, Provider
from edge_ext.errors import (
    BodyTooLarge,
    EdgeError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    ProviderKeyMissing,
    UnsupportedPath,
)
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, ResponseMode
from edge_ext.policy.request import parse_chat
from edge_ext.policy.state import Endpoint, StreamState
from edge_ext.providers.base import CLIENT_CREDENTIAL_HEADERS
from edge_ext.providers.registry import adapter_for
from edge_ext.routing.table import ModelTable

# The header Envoy's route reads to pick the provider cluster (route.cluster_header).
CLUSTER_HEADER = "x-edge-cluster"
METADATA_NAMESPACE = "edge_ext"

_PATHS = {
    "/v1/chat/completions": (Endpoint.CHAT, "POST"),
    "/health": (Endpoint.HEALTH, None),
    "/health/ready": (Endpoint.HEALTH, None),
}


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    """A configured provider with what it needs at request time."""

    config: Provider
    api_key: str | None

    @property
    def needs_key(self) -> bool:
        return bool(self.config.api_key_env or self.config.api_key_file)


class Policy:
    def __init__(self, config: Config, clock: Callable[[], float], keys: dict[str, str | None]):
        self._config = config
        self._clock = clock
        self._models = ModelTable(config)
        self._providers = {p.name: ProviderRuntime(p, keys.get(p.name)) for p in config.providers}
        for p in config.providers:
            adapter_for(p.kind)  # fail fast on a kind without an adapter
        self._max_body = config.processor.max_body_bytes

    def new_stream(self) -> StreamState:
        return StreamState(started=self._clock())

    # -- request headers ------------------------------------------------------------------
    def on_request_headers(self, st: StreamState, headers: dict[str, str], end_of_stream: bool) -> Decision:
        st.method = headers.get(":method", "")
        st.path = headers.get(":path", "").split("?", 1)[0]
        st.request_id = headers.get("x-request-id", "")
        st.headers = headers
        try:
            return self._check_headers(st, headers, end_of_stream)
        except EdgeError as err:
            return self._fail(st, err)

    def _check_headers(self, st: StreamState, headers: dict[str, str], end_of_stream: bool) -> Decision:
        endpoint, method = _PATHS.get(st.path, (Endpoint.OTHER, None))
        st.endpoint = endpoint
        if endpoint is Endpoint.OTHER:
            raise UnsupportedPath(f"Unknown request URL: {st.method} {st.path}")
        if endpoint is Endpoint.HEALTH:
            st.outcome = "health"
            return CONTINUE
        if method and st.method != method:
            raise MethodNotAllowed(f"{st.method} is not allowed on {st.path}; use {method}")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise BodyTooLarge(f"the request body is {length} bytes; the limit is {self._max_body}")
        if end_of_stream:
            raise InvalidRequest("the request has no body; send a JSON object")
        return CONTINUE

    # -- request body ---------------------------------------------------------------------
    def on_request_body(self, st: StreamState, body: bytes) -> Decision:
        try:
            if len(body) > self._max_body:
                raise BodyTooLarge(f"the request body is {len(body)} bytes; the limit is {self._max_body}")
            return self._route_chat(st, body)
        except EdgeError as err:
            return self._fail(st, err)

    def _route_chat(self, st: StreamState, body: bytes) -> Decision:
        request = parse_chat(body)
        st.model, st.stream = request.model, request.stream
        targets = self._models.targets(request.model)
        if not targets:
            raise ModelNotFound(
                f"The model '{request.model}' does not exist or is not served here",
                param="model",
            )
        runtime = self._providers[targets[0].provider.name]
        if runtime.needs_key and not runtime.api_key:
            raise ProviderKeyMissing(f"provider '{runtime.config.name}' has no API key configured")
        upstream = adapter_for(runtime.config.kind).chat_request(runtime.config, runtime.api_key or "", request)
        st.provider = runtime.config.name
        st.outcome = "routed"
        return Continue(
            set_headers=(
                (CLUSTER_HEADER, runtime.config.cluster),
                (":path", upstream.path),
                *upstream.set_headers,
            ),
            remove_headers=tuple(h for h in CLIENT_CREDENTIAL_HEADERS if h not in dict(upstream.set_headers)),
            body=upstream.body,
            clear_route_cache=True,
            metadata={"provider": st.provider, "model": st.model},
            response_mode=ResponseMode.NONE,
        )

    # -- response -------------------------------------------------------------------------
    def on_response_headers(self, st: StreamState, status: int, headers: dict[str, str]) -> Decision:
        st.response_status = status
        return CONTINUE

    def on_response_body(self, st: StreamState, chunk: bytes, end_of_stream: bool) -> Decision:
        st.response_bytes += len(chunk)
        return CONTINUE

    def _fail(self, st: StreamState, err: EdgeError) -> Decision:
        st.outcome = err.code
        return openai_api.error_response(err)
