"""How a request is shaped for a provider, and how the answer comes back: one table keyed by
(client API, provider API), and the one function that shapes a request.

``PAIRS`` says, for each pair, which translator (if any) turns the request, the JSON answer, an
error body and a stream into the other API. ``shape`` is what the router-level step (the first
provider) and a failover attempt (every later one) both send: the body in the provider's API,
its path and credentials, and the client headers it may not see removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Protocol

from edge_ext.apis.by_name import CLIENT_APIS
from edge_ext.config.models import Provider
from edge_ext.errors import InvalidRequest
from edge_ext.message import ChatRequest, Headers
from edge_ext.providers.base import upstream_request
from edge_ext.providers.registry import ADAPTERS, adapter_for
from edge_ext.sse import Event, encode
from edge_ext.translate import (
    AnthropicToOpenAIStream,
    OpenAIStreamPassthrough,
    OpenAIToAnthropicStream,
    TranslationError,
    anthropic_error_from_openai,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_error_from_anthropic,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from edge_ext.translate.responses import ResponsesStreamPassthrough, responses_terminal
from edge_ext.translate.stream_to_anthropic import truncated_anthropic_error


class StreamTranslator(Protocol):
    def feed(self, event: Event) -> bytes: ...

    def finish(self, clean: bool) -> bytes: ...


class AnthropicStreamPassthrough:
    """Anthropic to Anthropic: events re-emitted as they are, a cut stream ends in an error."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, event: Event) -> bytes:
        if self.done:
            return b""
        self.done = event.event in ("message_stop", "error")
        return encode(event.event, event.data)

    def finish(self, clean: bool) -> bytes:
        if self.done:
            return b""
        self.done = True
        return truncated_anthropic_error()


# How a refusal names an API to the client.
API_NAMES = {"openai": "Chat Completions", "anthropic": "Messages", "responses": "Responses"}


def can_serve(api: str, provider: Provider) -> bool:
    """Whether ``provider`` can answer a request in ``api`` (as is, or translated)."""
    adapter = adapter_for(provider.kind)
    return (api, api if api in adapter.wire_apis else adapter.wire_api) in PAIRS


def serving_filter(api: str) -> Callable[[Provider], bool] | None:
    """What the router must check of each provider for a request in ``api``; None when every
    provider kind serves it (the chat APIs, translated both ways)."""
    return None if api in _EVERYWHERE else partial(can_serve, api)


def wants_stream_usage(body: dict[str, Any]) -> bool:
    """Whether an OpenAI client asked for its stream's usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


@dataclass(frozen=True, slots=True)
class Pair:
    """One (client API, provider API) pair. The translators are None where the APIs are the same."""

    # (client body, upstream model, provider) -> the provider's body
    request: Callable[[dict[str, Any], str, Provider], dict[str, Any]] | None
    # (provider's answer, public model, created) -> the client's answer
    answer: Callable[[dict[str, Any], str, int], dict[str, Any]] | None
    # (status, provider's error body) -> the client's error body
    error: Callable[[int, bytes], bytes] | None
    # (client request, strip_usage, created) -> the stream translator
    stream: Callable[[ChatRequest, bool, int], StreamTranslator]
    # The provider's stream ended cleanly with this event.
    terminal: Callable[[Event], bool]
    # OpenAI streams report usage only when asked: the edge asks on the client's behalf, and
    # removes the extra chunk again (strip_usage) when the client had not asked.
    asks_stream_usage: bool = False


def _openai_done(event: Event) -> bool:
    return event.data.strip() == "[DONE]"


def _anthropic_stop(event: Event) -> bool:
    return event.event == "message_stop"


PAIRS: dict[tuple[str, str], Pair] = {
    ("openai", "openai"): Pair(
        None, None, None, lambda request, strip, created: OpenAIStreamPassthrough(strip_usage=strip), _openai_done,
        asks_stream_usage=True),
    ("anthropic", "anthropic"): Pair(
        None, None, None, lambda request, strip, created: AnthropicStreamPassthrough(), _anthropic_stop),
    ("openai", "anthropic"): Pair(
        lambda body, model, provider: openai_to_anthropic_request(
            body, model=model, default_max_tokens=provider.default_max_tokens),
        lambda answer, model, created: anthropic_to_openai_response(answer, model=model, created=created),
        openai_error_from_anthropic,
        lambda request, strip, created: AnthropicToOpenAIStream(
            model=request.model, created=created, include_usage=wants_stream_usage(request.body)),
        _anthropic_stop),
    # The translated request asks for stream usage itself, and the translator turns the usage
    # chunk into message_delta usage.
    ("anthropic", "openai"): Pair(
        lambda body, model, provider: anthropic_to_openai_request(body, model=model),
        lambda answer, model, created: openai_to_anthropic_response(answer, model=model),
        anthropic_error_from_openai,
        lambda request, strip, created: OpenAIToAnthropicStream(model=request.model),
        _openai_done),
    # The Responses API is served only by providers that speak it (no translation): a provider
    # without it is no pair, and body_for refuses the request for it.
    ("responses", "responses"): Pair(
        None, None, None, lambda request, strip, created: ResponsesStreamPassthrough(), responses_terminal),
}


# The client APIs every provider kind answers.
_EVERYWHERE = frozenset(api for api in CLIENT_APIS
                        if all((api, api if api in a.wire_apis else a.wire_api) in PAIRS for a in ADAPTERS.values()))


@dataclass(frozen=True, slots=True)
class UpstreamBody:
    wire_api: str  # the API the provider speaks
    body: bytes | None  # None: the client's bytes go through untouched
    # We asked an OpenAI upstream for stream usage the client did not ask for; strip it again.
    strip_usage: bool = False


class Shaped(NamedTuple):
    """A request as one provider gets it. A named tuple: built on every routed request, and a
    frozen dataclass costs several times as much to build."""

    body: UpstreamBody
    # The provider's path and credentials, and content-length when the body changed.
    set_headers: Headers
    remove_headers: tuple[str, ...]


# The body of most requests: the client's bytes, untouched, one value per API.
_UNTOUCHED = {api: UpstreamBody(api, None) for api in CLIENT_APIS}


def _dump(body: dict) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        # The outer body was checked for lone surrogates (edge_ext.apis.json_body); one escaped
        # inside a JSON-in-a-string field (tool-call arguments) surfaces only once that is decoded,
        # by the translator or the PII redactor: a client fault all the same.
        raise InvalidRequest("the request holds a lone UTF-16 surrogate escape (\\ud800-\\udfff) "
                             "inside a JSON string field; send valid Unicode") from exc


def body_for(request: ChatRequest, provider: Provider, upstream_model: str) -> UpstreamBody:
    """The body ``provider`` gets for ``request``, or InvalidRequest when its API cannot say it."""
    adapter = adapter_for(provider.kind)
    # A provider that speaks the client's API gets it as is; others get their own, translated.
    wire_api = request.api if request.api in adapter.wire_apis else adapter.wire_api
    if request.operation != "chat" and wire_api != request.api:
        # Embeddings and token counts have no translation: only their own API serves them.
        raise InvalidRequest(f"provider '{provider.name}' speaks the {wire_api} API, which has no "
                             f"{request.operation} endpoint")
    pair = PAIRS.get((request.api, wire_api))
    if pair is None:
        raise InvalidRequest(f"the model '{request.model}' is served by a provider ({provider.kind}) that does not "
                             f"speak the {API_NAMES.get(request.api, request.api)} API, and the edge does not "
                             "translate it", param="model")
    if pair.request is not None:
        try:
            return UpstreamBody(wire_api, _dump(pair.request(request.body, upstream_model, provider)))
        except TranslationError as exc:
            raise InvalidRequest(f"{exc} (the model is served by a provider with another API)") from exc
    body, changed, strip = request.body, request.rewritten, False
    if upstream_model != request.model:
        body, changed = {**body, "model": upstream_model}, True
    if pair.asks_stream_usage and request.stream and not wants_stream_usage(body):
        options = body.get("stream_options")
        body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
        changed, strip = True, True
    if not changed:
        return _UNTOUCHED.get(wire_api) or UpstreamBody(wire_api, None)
    return UpstreamBody(wire_api, _dump(body), strip)


def shape(request: ChatRequest, provider: Provider, api_key: str, upstream_model: str,
          client_headers: dict[str, str]) -> Shaped:
    """The request as ``provider`` gets it: body, path, credentials; ``client_headers`` are the
    headers as the processor saw them (edge_ext.providers.headers decides which may pass)."""
    body = body_for(request, provider, upstream_model)
    upstream = upstream_request(adapter_for(provider.kind), provider, api_key, upstream_model, client_headers,
                                request.operation, body.wire_api)
    set_headers: Headers = ((":path", upstream.path), *upstream.set_headers)
    if body.body is not None:
        # With request headers SEND and the body BUFFERED, content-length is ours to fix.
        set_headers += (("content-length", str(len(body.body))),)
    return Shaped(body, set_headers, upstream.remove_headers)
