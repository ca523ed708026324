"""Refusal fallback: a content-policy refusal retried, once, on the model's fallback group.

A refusal (OpenAI ``finish_reason: content_filter``, Azure's 400 ``code: content_filter``,
Anthropic ``stop_reason: refusal``) is an answer: never failed over, never a breaker failure,
unless ``routing.refusal_fallback`` names a fallback group for the request's model. Then:

- the router plans the first choice and one provider of the fallback group
  (``Router.pick``), and the router-level step marks the request with ``REFUSAL_WATCH``;
- the attempt filter on the plan's failover cluster, which skips first attempts otherwise,
  reads that first attempt's answer (JSON: buffered; a stream: only a non-200 before its first
  byte). On a refusal it turns the status into 503, which Envoy retries on the plan's next
  member, and writes ``refused`` and ``refusal_fallback`` into the request's metadata;
- the route adds ``x-edge-refusal-fallback: <group>`` from that metadata, and the response
  phase (or the outcome) counts the first provider as having refused, not failed.

Seen with Envoy 1.40 (docs/envoy.md): a status set in the reply to a buffered answer is what
the router's retry policy sees, and metadata written by the attempt filter reaches the request.
"""

from __future__ import annotations

import json

from edge_ext.message import Headers

REFUSAL_WATCH = "x-edge-refusal-watch"
FALLBACK_HEADER = "x-edge-refusal-fallback"
# What a refusal's answer becomes for Envoy's retry policy (5xx): any other status is final.
RETRY_STATUS = "503"


def refusal_watch(refusal_fallback: str, stream: bool) -> Headers:
    """The request header asking the attempt filter to read the first attempt's answer."""
    if not refusal_fallback:
        return ()
    return ((REFUSAL_WATCH, "stream" if stream else "json"),)


def _anthropic_refused(status: int, doc: dict) -> bool:
    return status == 200 and doc.get("stop_reason") == "refusal"


def _openai_refused(status: int, doc: dict) -> bool:
    if status == 200:
        choices = doc.get("choices")
        return (isinstance(choices, list) and bool(choices)
                and all(isinstance(c, dict) and c.get("finish_reason") == "content_filter" for c in choices))
    error = doc.get("error")
    return status == 400 and isinstance(error, dict) and error.get("code") == "content_filter"


# How each provider API says "refused for content": Anthropic's stop reason; OpenAI's
# content_filter finish on every choice, or its 400 of that code (the Responses API's too).
REFUSED = {"anthropic": _anthropic_refused, "openai": _openai_refused, "responses": _openai_refused}


def is_refusal(wire_api: str, status: int, body: bytes) -> bool:
    """Whether a provider's answer (in its own API) is a content-policy refusal."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and REFUSED[wire_api](status, doc)
