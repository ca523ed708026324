"""Pure translation between the OpenAI Chat Completions and Anthropic Messages APIs.

Functions over dicts and bytes, stream translators fed parsed
:class:`edge_ext.sse.Event` objects that return the bytes to send on; no I/O,
no clock (callers pass ``created``), nothing Envoy-specific. Request
translators raise :class:`TranslationError` for what the target API cannot
express; answer it as a 400 ``invalid_request_error`` in the client's dialect.
A response translator raises it only for a malformed upstream reply (tool
arguments that are not JSON although the reply was not cut short), which is
the upstream's fault: answer 502.

Stream translators are fed every event of the upstream stream in order and
then ``finish(clean)`` once at its end; whatever bytes they return go to the
client as they are. A clean end (``[DONE]`` / ``message_stop``) is emitted
only once the upstream has said its reply is complete; an upstream that
stops short gets the client an in-stream error instead.
"""

from __future__ import annotations

from .common import TranslationError
from .errors import (
    anthropic_error,
    anthropic_error_from_openai,
    anthropic_type_for_status,
    openai_error,
    openai_error_from_anthropic,
    openai_type_for_status,
)
from .passthrough import OpenAIStreamPassthrough
from .request_to_anthropic import DROPPED_PARAMS as DROPPED_OPENAI_PARAMS
from .request_to_anthropic import openai_to_anthropic_request
from .request_to_openai import DROPPED_PARAMS as DROPPED_ANTHROPIC_PARAMS
from .request_to_openai import anthropic_to_openai_request
from .response import anthropic_to_openai_response, openai_to_anthropic_response
from .stream_to_anthropic import OpenAIToAnthropicStream
from .stream_to_openai import AnthropicToOpenAIStream

__all__ = [
    "TranslationError",
    "DROPPED_OPENAI_PARAMS",
    "DROPPED_ANTHROPIC_PARAMS",
    "openai_to_anthropic_request",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "openai_to_anthropic_response",
    "openai_error",
    "anthropic_error",
    "openai_error_from_anthropic",
    "anthropic_error_from_openai",
    "openai_type_for_status",
    "anthropic_type_for_status",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "OpenAIStreamPassthrough",
]
