"""The request half of one exchange: the body the provider gets, in the API it speaks."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_ext.config.models import Provider
from edge_ext.errors import InvalidRequest
from edge_ext.message import ChatRequest
from edge_ext.translate import TranslationError, anthropic_to_openai_request, openai_to_anthropic_request


@dataclass(frozen=True, slots=True)
class UpstreamBody:
    body: bytes | None  # None: the client's bytes go through untouched
    # We asked an OpenAI upstream for stream usage the client did not ask for; strip it again.
    strip_usage: bool = False


def _dump(body: dict) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        # The outer body was checked for lone surrogates (edge_ext.apis.json_body); one escaped
        # inside a JSON-in-a-string field (tool-call arguments) surfaces only once that is decoded,
        # by the translator or the PII redactor: a client fault all the same.
        raise InvalidRequest("the request holds a lone UTF-16 surrogate escape (\\ud800-\\udfff) "
                             "inside a JSON string field; send valid Unicode") from exc


def upstream_body(request: ChatRequest, wire_api: str, provider: Provider, upstream_model: str) -> UpstreamBody:
    if request.api == wire_api:
        return _same_api(request, wire_api, upstream_model)
    try:
        return _translated(request, provider, upstream_model)
    except TranslationError as exc:
        raise InvalidRequest(f"{exc} (the model is served by a provider with another API)") from exc


def _translated(request: ChatRequest, provider: Provider, upstream_model: str) -> UpstreamBody:
    if request.api == "openai":
        return UpstreamBody(_dump(openai_to_anthropic_request(
            request.body, model=upstream_model, default_max_tokens=provider.default_max_tokens)))
    # Anthropic client, OpenAI upstream: the translated request asks for stream usage itself,
    # and the translator turns the usage chunk into message_delta usage.
    return UpstreamBody(_dump(anthropic_to_openai_request(request.body, model=upstream_model)))


def _same_api(request: ChatRequest, wire_api: str, upstream_model: str) -> UpstreamBody:
    body, changed, strip = request.body, request.rewritten, False
    if upstream_model != request.model:
        body, changed = {**body, "model": upstream_model}, True
    if wire_api == "openai" and request.stream:
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            # Token usage of a stream only comes with include_usage; ask for it on the client's
            # behalf and remove the extra chunk on the way back.
            body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
            changed, strip = True, True
    return UpstreamBody(_dump(body) if changed else None, strip)
