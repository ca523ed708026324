"""The usage of an answer that ended without the provider's report: estimated from what was
delivered.

A stream the client hung up on, or the provider cut, never carries its final usage (OpenAI sends
it in the last chunk, Anthropic's output count in ``message_delta``), and some compatible servers
never send any. Such an answer is still charged:

* input: the figures the provider already reported (Anthropic's ``message_start`` has them),
  else :func:`~edge_ext.cost.calc.estimate_input_tokens` of the client's request;
* output: the larger of the count reported so far and ceil(characters delivered / 4), the same
  rule of thumb as the input estimate. Text, reasoning and tool-call names and arguments count
  as characters.

Such a charge is marked ``estimated`` wherever it appears (ledger, metrics, access log).
"""

from __future__ import annotations

from typing import Any

from edge_ext.cost.calc import estimate_input_tokens, text_chars
from edge_ext.usage import Usage

__all__ = ["TEXT_OF", "DeliveredText", "estimated_usage"]


class DeliveredText:
    """Counts the characters of generated text in an answer, event by event or as one body.

    ``DeliveredText(api)`` is the counter of that API's shape: one subclass per API in ``TEXT_OF``
    (a method per shape rather than a test of the API's name on every event of a stream)."""

    __slots__ = ("api", "chars")

    def __new__(cls, api: str):
        return object.__new__(TEXT_OF[api] if cls is DeliveredText else cls)

    def __init__(self, api: str):
        self.api, self.chars = api, 0

    def observe_event(self, payload: dict[str, Any]) -> None:
        """One parsed SSE event of a stream in ``api``'s shape."""
        raise NotImplementedError

    def observe_body(self, body: dict[str, Any]) -> None:
        """A whole JSON answer in ``api``'s shape."""
        raise NotImplementedError


class _OpenAIText(DeliveredText):
    __slots__ = ()

    def observe_event(self, payload: dict[str, Any]) -> None:
        self._choices(payload.get("choices"), "delta")

    def observe_body(self, body: dict[str, Any]) -> None:
        self._choices(body.get("choices"), "message")

    def _choices(self, choices: Any, key: str) -> None:
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    self.chars += text_chars(choice.get(key))


class _AnthropicText(DeliveredText):
    __slots__ = ()

    def observe_event(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "content_block_delta":
            self.chars += text_chars(payload.get("delta"))
        elif kind == "content_block_start":
            self.chars += text_chars(payload.get("content_block"))

    def observe_body(self, body: dict[str, Any]) -> None:
        self.chars += text_chars(body.get("content"))


class _ResponsesText(DeliveredText):
    __slots__ = ()

    def observe_event(self, payload: dict[str, Any]) -> None:
        # Text, reasoning summaries and tool arguments all arrive as ``delta`` strings.
        delta = payload.get("delta")
        if isinstance(delta, str) and str(payload.get("type", "")).endswith(".delta"):
            self.chars += len(delta)

    def observe_body(self, body: dict[str, Any]) -> None:
        self.chars += text_chars(body.get("output"))


# Where each API puts generated text. One entry per API (keyed like edge_ext.usage.READERS).
TEXT_OF: dict[str, type[DeliveredText]] = {"openai": _OpenAIText, "anthropic": _AnthropicText,
                                           "responses": _ResponsesText}


def estimated_usage(reported: Usage | None, request_body: Any, delivered_chars: int) -> Usage:
    """What to charge for an answer that ended without its final usage."""
    output = -(-max(delivered_chars, 0) // 4)
    if reported is not None and reported.prompt_tokens:
        return Usage(reported.input_tokens, max(reported.output_tokens, output), reported.cached_input_tokens,
                     reported.cache_write_tokens, reported.reasoning_tokens)
    reasoning = reported.reasoning_tokens if reported is not None else 0
    floor = reported.output_tokens if reported is not None else 0
    body = request_body if isinstance(request_body, dict) else {}
    return Usage(input_tokens=estimate_input_tokens(body), output_tokens=max(floor, output), reasoning_tokens=reasoning)
