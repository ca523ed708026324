"""The one validation pass a request body gets before the router is asked, and the rule that
nothing is routed without an authenticated caller.

Every check that does not need a provider runs here: a refusal after the router's pick would hold
a half-open breaker's probe slot, and a check after forwarding would be too late.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_ext.apis.limits import RequestLimits
from edge_ext.apis.operations import OPERATIONS, Operation
from edge_ext.auth import Caller
from edge_ext.config.models import Provider
from edge_ext.errors import BodyNotAllowed, BodyTooLarge, InvalidRequest, Unauthorized
from edge_ext.policy.needs import ParseBody
from edge_ext.policy.state import StreamState
from edge_ext.message import ChatRequest
from edge_ext.providers.registry import adapter_for
from edge_ext.routing.router import Router

_WHAT = {"embeddings": "an embeddings API", "count_tokens": "a token counting API"}


def _speaks(wire_api: str) -> Callable[[Provider], bool]:
    return lambda provider: adapter_for(provider.kind).wire_api == wire_api


# The providers that may serve each operation: those speaking its API.
ACCEPTS: dict[str, Callable[[Provider], bool]] = {name: _speaks(op.wire_api) for name, op in OPERATIONS.items()}


# A body over this is decoded in the scanner's thread, not on the event loop: 230,000 small
# messages in 8 MB took 0.3-0.4 s to decode (the duplicate-key hook runs per object), long enough
# for every other stream of the worker to pass Envoy's message deadline. The hook's Python calls
# let the loop take the GIL between them.
PARSE_APART_BYTES = 1 << 20

# The output-limit fields of each client API (the Responses API has one of its own).
_OUTPUT_FIELDS = {"responses": ("max_output_tokens",)}
_CHAT_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")


def requested_output(body: dict, api: str = "openai") -> tuple[str, int] | None:
    """The output-limit field asking for the most tokens, and its value (validated integers)."""
    most = None
    for name in _OUTPUT_FIELDS.get(api, _CHAT_OUTPUT_FIELDS):
        value = body.get(name)
        if isinstance(value, int) and (most is None or (value, name) > most):
            most = (value, name)
    return None if most is None else (most[1], most[0])


def authenticated(st: StreamState) -> Caller:
    """The caller the request headers authenticated, for a handler that takes a body. Nothing is
    routed to a provider without one: a health probe, or a stream whose headers were refused or
    never seen, fails closed here whatever Envoy sends."""
    handler = st.handler
    if handler is None or not handler.body:
        raise BodyNotAllowed(f"{st.method} {st.path} takes no request body")
    if not handler.authenticated or st.caller is None:
        raise Unauthorized("Incorrect API key provided")
    return st.caller


class RequestCheck:
    def __init__(self, router: Router, limits: RequestLimits, max_body: int):
        self._router = router
        self._limits = limits
        self._max_body = max_body

    def validate(self, st: StreamState, caller: Caller, body: bytes, extend_s: float = 0.0) -> ChatRequest | ParseBody:
        """Parse, shape caps, the caller's models, the model's output limit: a 4xx or a request;
        for a body over PARSE_APART_BYTES, the need to parse it apart (then ``checked``)."""
        if len(body) > self._max_body:
            raise BodyTooLarge(f"the request body is {len(body)} bytes; the limit is {self._max_body}")
        op = OPERATIONS.get(st.handler.operation)
        parse = op.parse if op is not None else st.api.parse
        if len(body) > PARSE_APART_BYTES:
            return ParseBody(parse, body, self._limits, extend_s=extend_s)
        return self.checked(st, caller, parse(body, self._limits))

    def checked(self, st: StreamState, caller: Caller, request: ChatRequest) -> ChatRequest:
        """What validate checks once the body is parsed."""
        op = OPERATIONS.get(st.handler.operation)
        st.model, st.stream = request.model, request.stream
        caller.check_model(request.model)
        if op is not None:
            self._servable(op, request.model)
        wanted = requested_output(request.body, request.api)
        limit = self._router.output_limit(request.model)
        if wanted is not None and limit is not None and wanted[1] > limit:
            name, value = wanted
            raise InvalidRequest(f"'{name}' is {value}; this model produces at most {limit} tokens", param=name)
        return request

    def _servable(self, op: Operation, model: str) -> None:
        """A model none of whose providers has the operation's API is refused here, before the
        router's pick (which would hold a half-open breaker's probe slot); an unknown model is
        left to the router's 404."""
        if self._router.serves(model, ACCEPTS[op.name]) is False:
            raise InvalidRequest(f"the model '{model}' is served only by providers without "
                                 f"{_WHAT.get(op.name, op.name)} (it needs a provider speaking the "
                                 f"{op.wire_api} API)", param="model")
