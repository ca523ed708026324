"""Anthropic Messages request -> OpenAI Chat Completions request.

Decisions a client can observe:

* ``system`` becomes a leading system message (a string stays a string,
  several text blocks become text parts).
* ``tool_result`` blocks become ``tool`` messages placed before the rest of
  their user turn, because OpenAI wants them right after the assistant's
  ``tool_calls``. Their ``is_error`` flag has no OpenAI field and is dropped.
* ``thinking`` / ``redacted_thinking`` blocks in assistant history are
  dropped: they are signed Anthropic artefacts OpenAI cannot accept.
* ``stream: true`` also sets ``stream_options.include_usage`` because an
  Anthropic client always gets usage in its stream.
* ``max_tokens`` stays ``max_tokens``; temperatures (0..1) fit OpenAI's 0..2.
* Parameters in :data:`DROPPED_PARAMS` have no OpenAI equivalent and are
  dropped, as is per-block ``cache_control`` (OpenAI caches automatically).
  Server tools and non-text tool results raise :class:`TranslationError`.
"""

from __future__ import annotations

from typing import Any

from .common import TranslationError, each_message, openai_content_and_calls

__all__ = ["anthropic_to_openai_request", "DROPPED_PARAMS"]

DROPPED_PARAMS = frozenset({
    "top_k", "thinking", "service_tier", "container", "mcp_servers", "context_management",
    "inference_geo", "output_config", "output_format",
})

# OpenAI rejects more than four stop sequences; Anthropic allows many more.
OPENAI_MAX_STOP = 4

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# Blocks accepted in assistant history; the thinking ones are then dropped (see above).
_ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise TranslationError(f"{where}.source: image source {source.get('type')!r} is not supported", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        return {"type": "file", "file": {"filename": block.get("title") or "document.pdf",
                                         "file_data": f"data:application/pdf;base64,{source.get('data')}"}}
    if source.get("type") == "text":
        return {"type": "text", "text": source.get("data") or ""}
    raise TranslationError(f"{where}: only base64 PDF and text documents can be translated", where)


def _user_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text") or ""}
    if kind == "image":
        return _image_part(block, where)
    if kind == "document":
        return _document_part(block, where)
    raise TranslationError(f"{where}: content block type {kind!r} is not supported by OpenAI", where)


def _tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text: Any = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for j, item in enumerate(content):
            if not isinstance(item, dict) or item.get("type") != "text":
                raise TranslationError(f"{where}.content.{j}: OpenAI tool messages carry text only", where)
            parts.append({"type": "text", "text": item.get("text") or ""})
        text = parts
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _user(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content or ()):
        here = f"{where}.content.{j}"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            tools.append(_tool_message(block, here))
        elif isinstance(block, dict):
            parts.append(_user_part(block, here))
        else:
            raise TranslationError(f"{here}: expected a content block", here)
    return tools + ([{"role": "user", "content": parts}] if parts else [])


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    for j, block in enumerate(content or ()):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _ASSISTANT_BLOCKS:
            raise TranslationError(f"{where}.content.{j}: block type {kind!r} is not supported by OpenAI",
                                   f"{where}.content.{j}")
    text, calls = openai_content_and_calls(content)
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def _system(system: Any) -> dict[str, Any] | None:
    if system is None or system == "" or system == []:
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    texts = [b.get("text") or "" for b in system if isinstance(b, dict) and b.get("type") == "text"]
    if len(texts) == 1:
        return {"role": "system", "content": texts[0]}
    return {"role": "system", "content": [{"type": "text", "text": t} for t in texts]}


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        # Client tools have no type (or "custom"); typed ones such as
        # web_search_20250305 run on Anthropic's servers and cannot move.
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            raise TranslationError(f"tools.{i}: server tools cannot be translated to OpenAI", f"tools.{i}")
        fn: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            fn["description"] = tool["description"]
        fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in _TOOL_CHOICE:
        value: Any = _TOOL_CHOICE[kind]
    elif kind == "tool":
        value = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise TranslationError(f"tool_choice: {choice!r} cannot be translated", "tool_choice")
    return value, bool(choice.get("disable_parallel_tool_use"))


def anthropic_to_openai_request(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if (system := _system(body.get("system"))) is not None:
        messages.append(system)
    for where, role, message in each_message(body, "messages.{}"):
        if role == "user":
            messages.extend(_user(message, where))
        elif role == "assistant":
            messages.append(_assistant(message, where))
        else:
            raise TranslationError(f"{where}.role: expected 'user' or 'assistant'", f"{where}.role")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if stops := body.get("stop_sequences"):
        if len(stops) > OPENAI_MAX_STOP:
            raise TranslationError(f"stop_sequences: OpenAI accepts at most {OPENAI_MAX_STOP}", "stop_sequences")
        out["stop"] = list(stops)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if tools := body.get("tools"):
        out["tools"] = _tools(tools)
        if body.get("tool_choice") is not None:
            choice, no_parallel = _tool_choice(body["tool_choice"])
            out["tool_choice"] = choice
            if no_parallel:
                out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
        out["user"] = metadata["user_id"]
    return out
