"""OpenAI Chat Completions request -> Anthropic Messages request.

Decisions a client can observe:

* ``system`` and ``developer`` messages, wherever they appear, become the
  top-level ``system`` (Anthropic has no system role inside ``messages``):
  a single string stays a string, anything else becomes text blocks in order.
* ``temperature`` is clamped to 1.0: OpenAI accepts 0..2, Anthropic 0..1 and
  both are the same softmax temperature, so values up to 1 keep their meaning
  and hotter requests get the hottest Anthropic allows (rescaling would make
  the common 0.7 mean 0.35).
* ``max_completion_tokens`` (which supersedes ``max_tokens``) or
  ``max_tokens`` becomes ``max_tokens``, which Anthropic requires, falling
  back to ``default_max_tokens``.
* ``parallel_tool_calls: false`` becomes ``disable_parallel_tool_use``.
* Parameters in :data:`DROPPED_PARAMS` have no Anthropic equivalent and are
  dropped; so is any parameter not listed here at all. Requests that cannot be
  honoured faithfully (``n`` > 1, audio input, deprecated ``functions``) raise
  :class:`TranslationError` instead of silently changing meaning.
"""

from __future__ import annotations

from typing import Any

from .common import TranslationError, each_message, parse_arguments

__all__ = ["openai_to_anthropic_request", "DROPPED_PARAMS"]

DROPPED_PARAMS = frozenset({
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "seed",
    "response_format", "service_tier", "store", "metadata", "modalities", "audio", "prediction",
    "reasoning_effort", "web_search_options", "stream_options", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "verbosity",
})

ANTHROPIC_MAX_TEMPERATURE = 1.0

_TOOL_CHOICE = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def _text_parts(content: Any, where: str) -> list[str]:
    """Text of a system/developer/tool message: a string or text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise TranslationError(f"{where}.content[{i}]: only text parts are supported here",
                                       f"{where}.content")
            texts.append(part.get("text") or "")
        return texts
    raise TranslationError(f"{where}.content: expected a string or an array of parts", f"{where}.content")


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = (part.get("image_url") or {}).get("url")
    if not isinstance(url, str):
        raise TranslationError(f"{where}.image_url.url: missing", f"{where}.image_url.url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise TranslationError(f"{where}.image_url.url: data URLs must be base64 with a media type",
                                   f"{where}.image_url.url")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(f"{where}.image_url.url: expected an http(s) or data URL", f"{where}.image_url.url")


def _file_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    data_url = (part.get("file") or {}).get("file_data")
    if isinstance(data_url, str) and data_url.startswith("data:"):
        header, _, data = data_url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64" and media_type == "application/pdf":
            return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    # Uploaded file ids live in OpenAI's file store, which Anthropic cannot read.
    raise TranslationError(f"{where}: only inline base64 PDF files can be translated", f"{where}.file")


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        # Anthropic rejects empty text blocks; an empty string says nothing.
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content: expected a string or an array of parts", f"{where}.content")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        here = f"{where}.content[{i}]"
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            if part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, here))
        elif kind == "file":
            blocks.append(_file_block(part, here))
        else:
            raise TranslationError(f"{here}: content part type {kind!r} is not supported by Anthropic", here)
    return blocks


def _tool_use_blocks(tool_calls: Any, where: str) -> list[dict[str, Any]]:
    blocks = []
    for i, call in enumerate(tool_calls or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise TranslationError(f"{where}.tool_calls[{i}]: only function tool calls are supported",
                                   f"{where}.tool_calls")
        blocks.append({
            "type": "tool_use",
            "id": call.get("id"),
            "name": fn.get("name"),
            "input": parse_arguments(fn.get("arguments"), param=f"{where}.tool_calls[{i}].function.arguments"),
        })
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        texts = [t for t in _text_parts(content, where) if t]
        if texts:
            block["content"] = [{"type": "text", "text": t} for t in texts]
    return block


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic requires user/assistant alternation, so a run of same-role
    # turns (e.g. several tool results followed by a user note) is one turn;
    # tool_result blocks come first because they are appended first.
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _messages(body: dict[str, Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    system: list[Any] = []
    out: list[dict[str, Any]] = []
    for where, role, message in each_message(body, "messages[{}]"):
        if role in ("system", "developer"):
            system.append(message.get("content"))
        elif role == "user":
            _append(out, "user", _content_blocks(message.get("content"), where))
        elif role == "assistant":
            if message.get("function_call"):
                raise TranslationError(f"{where}.function_call: deprecated; use tool_calls", f"{where}.function_call")
            blocks = _content_blocks(message.get("content"), where)
            if not blocks and message.get("refusal"):
                blocks = [{"type": "text", "text": message["refusal"]}]
            _append(out, "assistant", blocks + _tool_use_blocks(message.get("tool_calls"), where))
        elif role == "tool":
            _append(out, "user", [_tool_result_block(message, where)])
        else:
            raise TranslationError(f"{where}.role: {role!r} cannot be translated", f"{where}.role")
    for message in out:
        # A lone text block reads better, and costs less, as a plain string.
        blocks = message["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            message["content"] = blocks[0]["text"]
    return system, out


def _system(contents: list[Any]) -> str | list[dict[str, Any]] | None:
    if len(contents) == 1 and isinstance(contents[0], str):
        return contents[0] or None
    texts = [t for i, c in enumerate(contents) for t in _text_parts(c, f"system[{i}]") if t]
    return [{"type": "text", "text": t} for t in texts] or None


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function":
            raise TranslationError(f"tools[{i}]: only function tools are supported", f"tools[{i}]")
        entry: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            entry["description"] = fn["description"]
        # Anthropic requires an object schema even for a no-argument tool.
        entry["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, str) and choice in _TOOL_CHOICE:
        result = dict(_TOOL_CHOICE[choice])
    elif isinstance(choice, dict) and choice.get("type") == "function":
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise TranslationError(f"tool_choice: {choice!r} cannot be translated", "tool_choice")
    # disable_parallel_tool_use is meaningless (and rejected) with "none".
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def openai_to_anthropic_request(body: dict[str, Any], *, model: str, default_max_tokens: int) -> dict[str, Any]:
    n = body.get("n")
    if n not in (None, 1):
        raise TranslationError("n: Anthropic returns exactly one choice; n must be 1", "n")
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise TranslationError("functions: deprecated; use tools", "functions")
    system, messages = _messages(body)
    out: dict[str, Any] = {"model": model, "messages": messages}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out["max_tokens"] = default_max_tokens if max_tokens is None else max_tokens
    if (system_value := _system(system)) is not None:
        out["system"] = system_value
    if (stop := body.get("stop")) is not None:
        # Anthropic rejects empty stop sequences; OpenAI ignores them.
        stops = [s for s in ([stop] if isinstance(stop, str) else stop) if isinstance(s, str) and s]
        if stops:
            out["stop_sequences"] = stops
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        out["temperature"] = min(temperature, ANTHROPIC_MAX_TEMPERATURE)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("stream"):
        out["stream"] = True
    if tools := body.get("tools"):
        out["tools"] = _tools(tools)
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    return out
