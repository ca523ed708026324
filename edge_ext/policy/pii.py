"""Prompt PII policy: off, redact (replaced before the provider sees it) or block (400).

What is scanned is what the provider will see: the whole body as one document
(:mod:`edge_ext.redact.document`), not a list of known prompt fields, so a field added to
either API tomorrow is covered too. That is every string at any depth (message text and names,
tool calls and their arguments, tool results, tool and schema descriptions, stop sequences,
metadata, ...), every object key (``tool_use.input`` and tool schemas are the client's own
objects, and their keys reach the provider as they are), integers long enough to be a card
number, and strings holding JSON (tool-call arguments, which the Anthropic translation decodes)
as the document they hold. Left out: the top-level ``model``, which must name a configured model
anyway, and binary payloads (base64 images, audio and PDFs), which no text pattern can read.

With ``redact`` the findings are replaced in place, keys included, and the re-serialized body is
what is forwarded; with ``block`` the request is refused naming the kinds and where the first
one is, never the values.

A large body is scanned apart (``scanned_apart``): the policy asks for the scan
(edge_ext.policy.needs.ScanPrompt) and the driver runs it in a worker thread, one at a time, so
the event loop keeps answering other streams: ``re`` holds the GIL while it matches, but hands
it over at least every switch interval (5 ms). Measured with a 2 MB text dense with findings (~0.6 s of scanning): inline, other
streams of the worker stalled for the whole scan (1.5 s round trips); in a thread their round
trips stayed at ~5 ms (at most ~35 ms). A process pool did better still (~0.1 ms) but costs a
process per worker and a copy of the body each way; the thread is enough to keep other streams far inside Envoy's
message timeout. Small bodies are scanned inline: the hop to a thread would cost more than the
scan (a few microseconds for a typical chat request).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edge_ext.errors import BodyTooLarge, PiiBlocked
from edge_ext.message import ChatRequest
from edge_ext.redact.document import Document, KeyCollision, ScanLimitExceeded, kinds_of
from edge_ext.redact.scanning import TooManySecrets

# Bodies up to this size are scanned on the event loop: at worst (text dense with findings,
# ~250 us per KB) 4 ms.
INLINE_BYTES = 16 * 1024
# Fields whose value may be a base64 data URL: OpenAI image_url.url and file.file_data; the
# Responses API's input_image.image_url and input_file.file_data.
_DATA_URL_FIELDS = frozenset({"url", "file_data", "image_url"})


def _is_base64_data_url(value: str) -> bool:
    comma = value.find(",", 0, 256)
    return value.startswith("data:") and comma != -1 and value[:comma].endswith(";base64")


def _skipper(body: dict[str, Any]):
    def skip(holder: Any, key: Any, value: str, parent_key: Any) -> bool:
        if holder is body:
            return key == "model"
        if key in _DATA_URL_FIELDS:
            return _is_base64_data_url(value)
        if key == "data" and isinstance(holder, dict):
            # Anthropic's {"type": "base64", "media_type", "data"} sources; OpenAI's
            # {"input_audio": {"data", "format"}}.
            return holder.get("type") == "base64" or parent_key == "input_audio"
        return False

    return skip


def guard_prompt(request: ChatRequest, policy: str, max_chars: int | None = None) -> ChatRequest:
    """The request as the provider may see it, or PiiBlocked / BodyTooLarge."""
    if policy == "off":
        return request
    try:
        doc = Document(request.body, skip=_skipper(request.body), limit=max_chars)
        if policy == "block":
            hits = doc.scan(scrub=False)
            if hits:
                where = doc.where(hits[0][0], hits) or "the request body"
                raise PiiBlocked(f"the prompt contains personal data ({', '.join(kinds_of(hits))}) in {where}; "
                                 "remove it and retry", param=where)
            return request
        kinds = doc.redact()
    except ScanLimitExceeded as exc:
        raise BodyTooLarge(f"the request holds more than {exc.limit} characters of text to scan for personal data "
                           f"(processor.max_scanned_chars); send less") from exc
    except TooManySecrets as exc:
        raise PiiBlocked("the prompt holds too many distinct secrets to redact; remove them and retry") from exc
    except KeyCollision as exc:
        raise PiiBlocked("the prompt has object keys that hold personal data and cannot be redacted apart; "
                         "remove it and retry") from exc
    return dataclasses.replace(request, rewritten=True) if kinds else request


def scanned_apart(request: ChatRequest, policy: str, inline_bytes: int = INLINE_BYTES) -> bool:
    """Whether the body is scanned in a thread by the driver (edge_ext.driver), which may take
    longer than Envoy's message deadline, rather than inline."""
    return policy != "off" and len(request.raw) > inline_bytes
