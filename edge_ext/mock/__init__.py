"""Faithful local mock of the OpenAI, Azure OpenAI and Anthropic HTTP APIs.

Tests start it in-process (``await start_mock(MockSettings(port=0))``) or as
a process (``python -m edge_ext.mock --port 18080 --name primary``) and drive
it with the official SDKs or through Envoy + edge-ext.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models[/{id}]``,
``POST /openai/deployments/{deployment}/chat/completions?api-version=…``,
``POST /openai/v1/chat/completions``, ``POST /v1/messages``,
``POST /v1/messages/count_tokens``, ``POST /v1/responses``, ``POST /openai/v1/responses``,
and the ``/_mock/*`` control API
(see :mod:`edge_ext.mock.control`).

Per-request knobs (request headers):

* faults: ``x-mock-status``, ``x-mock-retry-after``, ``x-mock-latency-ms``,
  ``x-mock-chunk-delay-ms``, ``x-mock-drop: mid-stream|before-response``,
  ``x-mock-drop-after`` (SSE events sent before a drop, default 4),
  ``x-mock-stream-error: <status>`` (in-stream error event after the cut);
* content/usage: ``x-mock-reply``, ``x-mock-output-words``,
  ``x-mock-cached-tokens``, ``x-mock-cache-creation-tokens``,
  ``x-mock-reasoning-tokens``, ``x-mock-refusal: true`` (a content-policy
  refusal: OpenAI ``finish_reason: content_filter``, Anthropic
  ``stop_reason: refusal``, Azure 400 ``code: content_filter``).

Token counting is described in :mod:`edge_ext.mock.tokens`, reply text in
:mod:`edge_ext.mock.replies`.
"""

from .server import MockHandle, build_app, main, start_mock
from .settings import MockSettings
from .tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING

__all__ = [
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "MockHandle",
    "MockSettings",
    "build_app",
    "main",
    "start_mock",
]
