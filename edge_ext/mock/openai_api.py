"""OpenAI and Azure OpenAI Chat Completions endpoints.

Validation messages, ``param`` and ``code`` values copy the real service so
that edge-ext's error passthrough can be tested against realistic bodies.
Azure differs only in routing (deployment in the path, mandatory
``api-version`` query), auth header (``api-key``) and content-filter fields.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import AZURE, OPENAI
from .openai_shapes import Completion, model_list, model_object
from .pipeline import Exchange, begin, bearer_token
from .replies import KnobError, ReplyKnobs, plan_text, plan_tool_call, text_of, wants_tool
from .tokens import count_messages

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")
_SERVICE_TIERS = ("flex", "priority", "scale")


class Invalid(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _check_int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} instead.",
                      name, "invalid_type")
    if value < lo:
        raise Invalid(f"Invalid '{name}': integer below minimum value. Expected a value >= {lo}, "
                      f"but got {value} instead.", name, "integer_below_min_value")
    if value > hi:
        raise Invalid(f"Invalid '{name}': integer above maximum value. Expected a value <= {hi}, "
                      f"but got {value} instead.", name, "integer_above_max_value")
    return value


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise Invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise Invalid("Invalid type for 'messages': expected an array of objects, but got "
                      f"{type(messages).__name__} instead.", "messages", "invalid_type")
    if not messages:
        raise Invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                      "but got an empty array instead.", "messages", "empty_array")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise Invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        role = msg.get("role")
        if role is None:
            raise Invalid(f"Missing required parameter: '{where}.role'.", f"{where}.role",
                          "missing_required_parameter")
        if role not in _ROLES:
            raise Invalid(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                          "'function', 'tool', and 'developer'.", f"{where}.role", "invalid_value")
        content = msg.get("content")
        # Only an assistant turn that carries tool calls may omit content.
        if content is None and not (role == "assistant" and (msg.get("tool_calls") or msg.get("function_call"))):
            raise Invalid(f"Missing required parameter: '{where}.content'.", f"{where}.content",
                          "missing_required_parameter")
        if role == "tool" and not msg.get("tool_call_id"):
            raise Invalid(f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id",
                          "missing_required_parameter")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in _PART_TYPES:
                    raise Invalid(f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                                  "'input_audio', 'refusal', and 'file'.", f"{where}.content[{j}].type",
                                  "invalid_value")
                if kind == "image_url" and not isinstance((part.get("image_url") or {}).get("url"), str):
                    raise Invalid(f"Missing required parameter: '{where}.content[{j}].image_url.url'.",
                                  f"{where}.content[{j}].image_url.url", "missing_required_parameter")
        elif content is not None and not isinstance(content, str):
            raise Invalid(f"Invalid type for '{where}.content': expected one of a string or array of objects.",
                          f"{where}.content", "invalid_type")


def _tool_names(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        raise Invalid("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    names = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or (tool.get("type", "function") == "function" and not isinstance(fn, dict)):
            raise Invalid(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}].function",
                          "missing_required_parameter")
        if isinstance(fn, dict):
            if not isinstance(fn.get("name"), str):
                raise Invalid(f"Missing required parameter: 'tools[{i}].function.name'.",
                              f"tools[{i}].function.name", "missing_required_parameter")
            names.append(fn["name"])
    return names


def _choose_tool(body: dict[str, Any], messages: list[dict[str, Any]], last_user: str) -> str | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None:
        if choice is not None:
            raise Invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                          "specified.", "tool_choice")
        return None
    names = _tool_names(tools)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise Invalid(f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                          "tool_choice", "invalid_value")
        return name
    if choice not in (None, "none", "auto", "required"):
        raise Invalid(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                      "tool_choice", "invalid_value")
    if not names or choice == "none":
        return None
    if choice == "required":
        return names[0]
    # Under "auto" the mock only calls a tool on an explicit user request, and
    # never right after a tool result, so agent loops terminate.
    if messages[-1].get("role") == "user" and wants_tool(last_user):
        return names[0]
    return None


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise Invalid("Invalid 'stop': expected a string or an array of at most 4 strings.", "stop", "invalid_value")


async def _complete(ex: Exchange, model_from_path: str | None) -> web.StreamResponse:
    if ex.body_invalid or (ex.body is not None and not isinstance(ex.body, dict)):
        return ex.error(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what "
                        "was sent was not valid JSON. If you have trouble figuring out how to fix this, please "
                        "contact us through our help center at help.openai.com.)")
    body: dict[str, Any] = ex.body or {}
    try:
        model = body.get("model") or model_from_path
        if not isinstance(model, str) or not model:
            raise Invalid("you must provide a model parameter")
        messages = body.get("messages")
        _check_messages(messages)
        stream = body.get("stream") or False
        if not isinstance(stream, bool):
            raise Invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            raise Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                          "stream_options")
        n = _check_int(body, "n", 1, 128) or 1
        # max_completion_tokens supersedes the deprecated max_tokens.
        max_tokens = _check_int(body, "max_completion_tokens", 1, 10**9)
        if max_tokens is None:
            max_tokens = _check_int(body, "max_tokens", 1, 10**9)
        stop = _stops(body.get("stop"))
        last_user = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        tool = _choose_tool(body, messages, last_user)
        knobs = ReplyKnobs.from_headers(ex.headers)
    except Invalid as exc:
        return ex.error(400, exc.message, param=exc.param, code=exc.code)
    except KnobError as exc:
        return ex.error(400, f"mock: {exc}")

    if knobs.refusal and ex.dialect is AZURE:
        # Azure's content filter refuses the prompt itself, before any generation.
        return ex.error(400, "The response was filtered due to the prompt triggering Azure OpenAI's content "
                        "management policy.", param="prompt", code="content_filter")
    if tool is not None and not knobs.refusal:
        plan = plan_tool_call(tool, last_user)
    else:
        last = messages[-1]
        tool_result = text_of(last.get("content")) if last.get("role") in ("tool", "function") else None
        plan = plan_text(last_user, tool_result_text=tool_result, max_tokens=max_tokens, stop=stop, knobs=knobs)
    tier = body.get("service_tier")
    completion = Completion(
        model=model,
        plan=plan,
        prompt=count_messages(messages, tools=body.get("tools")),
        knobs=knobs,
        n=n,
        fingerprint=ex.state.fingerprint,
        service_tier=tier if tier in _SERVICE_TIERS else "default",
        azure=ex.dialect is AZURE,
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        obfuscate=ex.dialect is not AZURE
        and not (isinstance(stream_options, dict) and stream_options.get("include_obfuscation") is False),
    )
    if stream:
        return await ex.sse(completion.frames())
    return await ex.json(completion.body())


def _openai_auth_error(ex: Exchange) -> web.Response | None:
    expected = ex.settings.openai_key
    if expected is None:
        return None
    token = bearer_token(ex.headers)
    if token is None:
        return ex.error(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", code=None)
    if token != expected:
        shown = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "****"
        return ex.error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
    return None


def _azure_auth_error(ex: Exchange) -> web.Response | None:
    expected = ex.settings.azure_key
    if expected is None:
        return None
    # Azure accepts a resource key in api-key or an Entra ID token as Bearer.
    if ex.headers.get("api-key") == expected or bearer_token(ex.headers) == expected:
        return None
    return ex.error(401)


def _azure_version_missing(ex: Exchange) -> web.Response | None:
    # The deployment-scoped API refuses requests without api-version with a bare 404; the
    # /openai/v1 surface does not need one.
    if ex.request.match_info.get("deployment") is not None and not ex.request.query.get("api-version"):
        return ex.error(404, "Resource not found", code="404")
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, OPENAI, _openai_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    return await _complete(ex, None)


async def azure_chat_completions(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, AZURE, _azure_auth_error, _azure_version_missing)
    if not isinstance(ex, Exchange):
        return ex
    return await _complete(ex, request.match_info.get("deployment"))


async def list_models(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, OPENAI, _openai_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    return await ex.json(model_list(ex.settings.models))


async def get_model(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, OPENAI, _openai_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    model_id = request.match_info["model"]
    if model_id not in ex.settings.models:
        return ex.error(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return await ex.json(model_object(model_id))
