"""OpenAI and Azure OpenAI Responses API (``POST /v1/responses``, Azure's ``/openai/v1/responses``).

The same prelude as the chat endpoints (recorded; scripted faults, latency, drops and in-stream
errors apply, ``"path": "/v1/responses"``) and the same reply knobs. The mock keeps no state:
``previous_response_id`` is accepted and recorded, never looked up. Text answers only (a tool
call is the chat endpoint's business); the JSON and the event sequence follow api.openai.com.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from . import wire
from .errors import AzureDialect, OpenAIDialect
from .openai_api import Invalid, _azure_auth_error, _check_int, _openai_auth_error
from .pipeline import Exchange, begin
from .replies import FINISH_LENGTH, KnobError, ReplyKnobs, ReplyPlan, plan_text, text_of
from .tokens import REPLY_PRIMING, count_text


def _error_event(dialect: OpenAIDialect, status: int, request_id: str) -> bytes:
    # A failure after the 200 header is a named ``error`` event, not chat's bare data line.
    error = dialect.error_body(status, request_id=request_id)["error"]
    return wire.sse_event("error", {"type": "error", "code": error.get("code") or error.get("type"),
                                    "message": error.get("message"), "param": None, "sequence_number": 0})


class ResponsesDialect(OpenAIDialect):
    def stream_error_frame(self, status: int, request_id: str = "") -> bytes:
        return _error_event(self, status, request_id)


class AzureResponsesDialect(AzureDialect):
    def stream_error_frame(self, status: int, request_id: str = "") -> bytes:
        return _error_event(self, status, request_id)


RESPONSES, AZURE_RESPONSES = ResponsesDialect(), AzureResponsesDialect()


def _item_text(item: Any) -> tuple[str, str]:
    """(role, text) of an input item."""
    if not isinstance(item, dict):
        return "", ""
    content = item.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content
                           if isinstance(p, dict) and p.get("type") in ("input_text", "output_text"))
    return str(item.get("role", "")), text_of(content)


def _prompt(body: dict[str, Any]) -> tuple[str, int]:
    """The last user text and the prompt's tokens."""
    given = body.get("input")
    tokens = REPLY_PRIMING + count_text(body.get("instructions"))
    if isinstance(given, str):
        return given, tokens + count_text(given)
    last = ""
    for item in given or ():
        role, text = _item_text(item)
        tokens += 3 + count_text(text)
        if role == "user":
            last = text
    return last, tokens


def _check(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    given = body.get("input")
    if given is not None and not isinstance(given, (str, list)):
        raise Invalid("Invalid type for 'input': expected one of a string or array of input items, but got "
                      f"{type(given).__name__} instead.", "input", "invalid_type")
    if not isinstance(body.get("stream", False), bool):
        raise Invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    _check_int(body, "max_output_tokens", 16, 10**9)


class Response:
    """One generated response, rendered whole or as its event stream."""

    def __init__(self, body: dict[str, Any], plan: ReplyPlan, prompt_tokens: int, knobs: ReplyKnobs):
        self.body, self.plan, self.prompt_tokens, self.knobs = body, plan, prompt_tokens, knobs
        self.id = wire.new_id("resp_", 48)
        self.item_id = wire.new_id("msg_", 48)
        self.created_at = int(time.time())

    def _usage(self) -> dict[str, Any]:
        output = self.plan.completion_tokens + self.knobs.reasoning_tokens
        return {"input_tokens": self.prompt_tokens,
                "input_tokens_details": {"cached_tokens": min(self.knobs.cached_tokens, self.prompt_tokens)},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": self.knobs.reasoning_tokens},
                "total_tokens": self.prompt_tokens + output}

    def _part(self, text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def _item(self, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "message", "id": self.item_id, "status": status, "role": "assistant", "content": content}

    def _object(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        body = self.body
        cut = status == "incomplete"
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"], "output": output, "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": usage, "user": None, "metadata": body.get("metadata") or {},
        }

    @property
    def _status(self) -> str:
        return "incomplete" if self.plan.finish == FINISH_LENGTH else "completed"

    def json(self) -> dict[str, Any]:
        item = self._item("completed", [self._part(self.plan.text)])
        return self._object(self._status, [item], self._usage())

    def frames(self) -> list[bytes]:
        opening = self._object("in_progress", [], None)
        at = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        text = self.plan.text
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": opening}),
            ("response.in_progress", {"response": opening}),
            ("response.output_item.added", {"output_index": 0, "item": self._item("in_progress", [])}),
            ("response.content_part.added", {**at, "part": self._part("")}),
            *(("response.output_text.delta", {**at, "delta": piece, "logprobs": []}) for piece in self.plan.deltas()),
            ("response.output_text.done", {**at, "text": text, "logprobs": []}),
            ("response.content_part.done", {**at, "part": self._part(text)}),
            ("response.output_item.done", {"output_index": 0, "item": self._item("completed", [self._part(text)])}),
            (f"response.{self._status}", {"response": self.json()}),
        ]
        return [wire.sse_event(name, {"type": name, "sequence_number": n, **fields})
                for n, (name, fields) in enumerate(events)]


async def _respond(ex: Exchange) -> web.StreamResponse:
    if ex.body_invalid:
        return ex.error(400, "We could not parse the JSON body of your request.")
    body = ex.body
    try:
        _check(body)
        last_user, prompt_tokens = _prompt(body)
        knobs = ReplyKnobs.from_headers(ex.headers)
    except Invalid as exc:
        return ex.error(400, exc.message, param=exc.param, code=exc.code)
    except KnobError as exc:
        return ex.error(400, f"mock: {exc}")
    response = Response(body, plan_text(last_user, max_tokens=body.get("max_output_tokens"), knobs=knobs),
                        prompt_tokens, knobs)
    if body.get("stream"):
        return await ex.sse(response.frames())
    return await ex.json(response.json())


async def responses(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, RESPONSES, _openai_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    return await _respond(ex)


async def azure_responses(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, AZURE_RESPONSES, _azure_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    return await _respond(ex)
