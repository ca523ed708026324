"""Anthropic Messages API endpoints (``/v1/messages`` and friends).

The service checks, in order: credentials, the ``anthropic-version`` header,
then the body (pydantic-style ``field: problem`` messages). ``max_tokens`` is
mandatory, system prompts go in the top-level ``system`` field, and roles
inside ``messages`` are only ``user`` and ``assistant``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .anthropic_shapes import Message, model_list
from .errors import ANTHROPIC
from .pipeline import Exchange, begin, bearer_token
from .replies import KnobError, ReplyKnobs, plan_text, plan_tool_call, text_of, wants_tool
from .tokens import count_messages

_BLOCK_TYPES = frozenset({
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
    "search_result", "server_tool_use", "web_search_tool_result", "container_upload",
})


class Invalid(Exception):
    pass


def _tool_result_text(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return None
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    if not results:
        return None
    return " ".join(text_of(b.get("content")) for b in results)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise Invalid("messages: Field required")
    if not isinstance(messages, list):
        raise Invalid("messages: Input should be a valid list")
    if not messages:
        raise Invalid("messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise Invalid(f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role == "system":
            raise Invalid('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                          'parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if content is None:
            raise Invalid(f"messages.{i}.content: Field required")
        if isinstance(content, list):
            for j, block in enumerate(content):
                kind = block.get("type") if isinstance(block, dict) else None
                if kind not in _BLOCK_TYPES:
                    raise Invalid(f"messages.{i}.content.{j}: Input tag '{kind}' found using 'type' does not "
                                  "match any of the expected tags")
                if kind == "image" and not isinstance(block.get("source"), dict):
                    raise Invalid(f"messages.{i}.content.{j}.image.source: Field required")
                if kind == "text" and not block.get("text"):
                    raise Invalid("messages: text content blocks must be non-empty")
        elif not isinstance(content, str):
            raise Invalid(f"messages.{i}.content: Input should be a valid string or list")


def _check_common(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    model = body.get("model")
    if model is None:
        raise Invalid("model: Field required")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Input should be a valid string")
    messages = body.get("messages")
    _check_messages(messages)
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise Invalid("system: Input should be a valid string or list of text blocks")
    return model, messages


def _tool_names(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise Invalid(f"tools.{i}.name: Field required")
        names.append(tool["name"])
    return names


def _choose_tool(body: dict[str, Any], messages: list[dict[str, Any]], last_user: str) -> str | None:
    names = _tool_names(body.get("tools"))
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags: "
                      "'auto', 'any', 'tool', 'none'")
    if kind == "tool":
        name = choice.get("name")
        if name not in names:
            raise Invalid(f"tool_choice: tool '{name}' not found in tools")
        return name
    if not names or kind == "none":
        return None
    if kind == "any":
        return names[0]
    last = messages[-1]
    # Under "auto" the mock only calls a tool on an explicit request, never
    # right after a tool result, so agent loops terminate.
    if last.get("role") == "user" and _tool_result_text(last) is None and wants_tool(last_user):
        return names[0]
    return None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            text = text_of(msg.get("content"))
            if text:
                return text
    return ""


def _auth_error(ex: Exchange) -> web.Response | None:
    expected = ex.settings.anthropic_key
    if expected is not None:
        # The API's native header is x-api-key; current SDKs send the key as
        # a Bearer token instead, which the service also accepts.
        presented = ex.headers.get("x-api-key") or bearer_token(ex.headers)
        if presented is None:
            return ex.error(401, "x-api-key header is required")
        if presented != expected:
            return ex.error(401, "invalid x-api-key")
    if not ex.headers.get("anthropic-version"):
        return ex.error(400, "anthropic-version: header is required")
    return None


def _body_error(ex: Exchange) -> web.Response | None:
    if ex.body_invalid:
        return ex.error(400, "There was an issue with the request body: the body is not valid JSON.")
    if not isinstance(ex.body, dict):
        return ex.error(400, "There was an issue with the request body: expected a JSON object.")
    return None


async def messages(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, ANTHROPIC, _auth_error, _body_error)
    if not isinstance(ex, Exchange):
        return ex
    body: dict[str, Any] = ex.body
    try:
        model, msgs = _check_common(body)
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise Invalid("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise Invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise Invalid("stream: Input should be a valid boolean")
        stops = body.get("stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise Invalid("stop_sequences: Input should be a valid list of strings")
        temperature = body.get("temperature")
        if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1):
            raise Invalid("temperature: Input should be less than or equal to 1")
        last_user = _last_user_text(msgs)
        tool = _choose_tool(body, msgs, last_user)
        knobs = ReplyKnobs.from_headers(ex.headers)
    except Invalid as exc:
        return ex.error(400, str(exc))
    except KnobError as exc:
        return ex.error(400, f"mock: {exc}")

    if tool is not None and not knobs.refusal:
        plan = plan_tool_call(tool, last_user)
    else:
        plan = plan_text(last_user, tool_result_text=_tool_result_text(msgs[-1]), max_tokens=max_tokens,
                         stop=tuple(stops), knobs=knobs)
    prompt = count_messages(msgs, system=body.get("system"), tools=body.get("tools"))
    message = Message(model=model, plan=plan, prompt_tokens=prompt.total, knobs=knobs)
    if stream:
        return await ex.sse(message.frames())
    return await ex.json(message.body())


async def count_tokens(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, ANTHROPIC, _auth_error, _body_error)
    if not isinstance(ex, Exchange):
        return ex
    try:
        _, msgs = _check_common(ex.body)
        _tool_names(ex.body.get("tools"))
    except Invalid as exc:
        return ex.error(400, str(exc))
    prompt = count_messages(msgs, system=ex.body.get("system"), tools=ex.body.get("tools"))
    return await ex.json({"input_tokens": prompt.total})


async def list_models(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, ANTHROPIC, _auth_error)
    if not isinstance(ex, Exchange):
        return ex
    return await ex.json(model_list(ex.settings.models))
