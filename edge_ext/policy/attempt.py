"""One retry attempt of a failed-over request, seen by the ext_proc filter on the failover cluster.

Envoy runs that filter once per attempt after the first (the first attempt skips it: the
router-level filter already shaped the request for the first provider). Seen with Envoy 1.40:
every attempt gets the body the router-level filter produced, replayed from Envoy's buffer, so
it is always in the first provider's shape; but all attempts share one header map, so an attempt
starts from the headers the previous attempt left. This step re-shapes both for the provider
Envoy picked for this attempt (named by the endpoint's metadata).

What it needs comes with the attempt: the request's dynamic metadata names the first provider
and the public model. The stream may therefore land on any worker process; no state is shared
with the request's router-level stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_ext.apis.by_name import CLIENT_APIS
from edge_ext.apis.operations import OPERATIONS
from edge_ext.errors import EdgeError, FailoverRefused
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Mode, Respond, ResponseMode
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.refusal import REFUSAL_WATCH, RETRY_STATUS, is_refusal
from edge_ext.policy.shaping import shape
from edge_ext.providers.registry import adapter_for
from edge_ext.routing.router import Router

# Asks Envoy for this attempt's body; the reply to it carries every mutation.
_WANT_BODY = Continue(mode=Mode())


@dataclass(slots=True)
class AttemptState:
    provider: str = ""  # who this attempt goes to
    first: str = ""  # whose shape the body is in
    model: str = ""  # the public model name the client asked for
    api: str = ""  # the client's API, when the provider speaks it as is (the Responses API)
    headers: dict[str, str] = field(default_factory=dict)
    granted: bool = False  # on_headers verified the plan's grant
    operation: str = ""  # set for an embedding or a token count (edge_ext.apis.operations)
    watch: str = ""  # the first attempt, read for a refusal: "json" or "stream" (edge_ext.policy.refusal)
    status: int = 0  # the watched answer's status


class AttemptStep:
    def __init__(self, router: Router, grants: AttemptGrants):
        self._router = router
        self._grants = grants

    def on_headers(self, st: AttemptState, headers: dict[str, str], provider: str, route: dict[str, str]) -> Decision:
        st.provider, st.headers = provider, headers
        st.first, st.model = route.get("provider", ""), route.get("model", "")
        st.operation = route.get("operation", "")
        st.api = route.get("api", "")
        if not st.first or not st.model:
            return self.refuse("the request's routing metadata did not reach the retry")
        if not self._grants.allows(route, provider):
            # Not a retry of a request this edge authenticated and routed: never a credential.
            return self.refuse("the retry carries no valid grant for this provider")
        st.granted = True
        watch = headers.get(REFUSAL_WATCH, "")
        if headers.get("x-envoy-attempt-count") == "1":
            if watch not in ("json", "stream") or provider != st.first:
                return self.refuse("a first attempt reached the attempt filter without a refusal watch")
            # The router-level filter shaped this attempt: only its answer is read, the whole
            # of a JSON one, the headers of a stream.
            st.watch = watch
            body = ResponseMode.BUFFERED if watch == "json" else ResponseMode.NONE
            return Continue(remove_headers=(REFUSAL_WATCH,), mode=Mode(response_headers=True, response_body=body, request_body=False))
        # Even back at the first provider, the shared header map may hold another's credentials.
        return _WANT_BODY

    def on_body(self, st: AttemptState, body: bytes) -> Decision:
        if not st.granted:
            return self.refuse("the retry carries no valid grant for this provider")
        router = self._router
        source, target = router.provider(st.first), router.provider(st.provider)
        # The fallback group's model when this provider is there for a refusal (or a failure).
        found = router.attempt_model(st.model, st.provider)
        upstream_model = found[1] if found else None
        if source is None or target is None or upstream_model is None:
            # Never let an attempt leave with another provider's shape or credentials.
            return self.refuse(f"provider {st.provider!r} cannot take over a request for {st.model!r}")
        try:
            # The body is in the first provider's API: the client's own when that provider spoke it.
            op = OPERATIONS.get(st.operation)
            adapter = adapter_for(source.kind)
            parse = op.parse if op is not None else CLIENT_APIS[st.api if st.api in adapter.wire_apis else adapter.wire_api].parse
            request = parse(body)
            # st.headers is the shared header map as this attempt found it: the adapter's
            # allow-list removes whatever an earlier attempt set for its provider along with any
            # client header.
            shaped = shape(request, target, router.api_key(st.provider), upstream_model, st.headers)
        except EdgeError as err:
            return self.refuse(f"the request cannot be sent to {st.provider!r}: {err.message}")
        return Continue(set_headers=((":authority", target.url.netloc), *shaped.set_headers),
                        remove_headers=shaped.remove_headers, body=shaped.body.body)

    def on_response_headers(self, st: AttemptState, status: int, headers: dict[str, str]) -> Decision:
        if not st.watch:
            return CONTINUE
        st.status = status
        if st.watch == "stream" and status != 200 and headers.get("content-type", "").startswith("application/json"):
            # A stream refused before its first byte (Azure's prompt filter): its error is read.
            return Continue(mode=Mode(response_headers=True, response_body=ResponseMode.BUFFERED, request_body=False))
        return CONTINUE

    def on_response_body(self, st: AttemptState, body: bytes) -> Decision:
        provider = self._router.provider(st.provider)
        fallback = self._router.refusal_fallback(st.model)
        if not st.watch or provider is None or not fallback:
            return CONTINUE
        if not is_refusal(adapter_for(provider.kind).wire_api, st.status, body):
            return CONTINUE
        # A retriable status: Envoy tries the plan's next member, the fallback group's provider.
        return Continue(set_headers=((":status", RETRY_STATUS),),
                        metadata=(("refused", st.provider), ("refusal_fallback", fallback)))

    @staticmethod
    def refuse(message: str) -> Respond:
        # Seen with Envoy 1.40: a reply from this upstream filter is a local reply of the
        # request, and the listener's local_reply_config renders it in the client's API shape
        # (the metadata marking our own replies lives on the downstream stream, not here). So
        # the body is the bare message, which becomes the error's message.
        err = FailoverRefused(message)
        return Respond(err.status, err.message.encode(), (("content-type", "text/plain"),), f"edge_ext_{err.code}")
