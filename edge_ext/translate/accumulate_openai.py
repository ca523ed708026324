"""OpenAI Chat Completions: fold a streamed answer's chunks into one ``chat.completion``.

See :mod:`edge_ext.translate.accumulate` for when an answer counts as complete.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..sse import Event
from .common import event_json

__all__ = ["OpenAIAccumulator"]


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    # Fields of non-function tool calls, which arrive whole in one delta.
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": self.type or "function"}
        if self.name is not None or self.arguments or call["type"] == "function":
            call["function"] = {"name": self.name or "", "arguments": "".join(self.arguments)}
        call.update(self.extra)
        return call


@dataclass(slots=True)
class _Choice:
    role: str | None = None
    content: list[str] | None = None
    refusal: list[str] | None = None
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    function_call: _ToolCall | None = None
    annotations: list[Any] = field(default_factory=list)
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None

    def feed(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(delta)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            self._logprobs(logprobs)
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def _delta(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("role"), str):
            self.role = delta["role"]
        # ``None`` means "never a string": the opening chunk of a text answer
        # carries ``content: ""``, that of a tool call or refusal ``null``,
        # and the JSON answer keeps exactly that distinction.
        text = delta.get("content")
        if isinstance(text, str):
            if self.content is None:
                self.content = []
            self.content.append(text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str):
            if self.refusal is None:
                self.refusal = []
            self.refusal.append(refusal)
        annotations = delta.get("annotations")
        if isinstance(annotations, list):
            self.annotations.extend(annotations)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._tool_call(call)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            # The deprecated ``functions`` API streams one call this way.
            if self.function_call is None:
                self.function_call = _ToolCall()
            self._function(self.function_call, legacy)

    def _tool_call(self, call: dict[str, Any]) -> None:
        # Tool calls are numbered by ``index``: the first delta of a call
        # brings id, type and name, the following ones argument pieces.
        index = call.get("index", 0)
        entry = self.tool_calls.get(index)
        if entry is None:
            entry = self.tool_calls[index] = _ToolCall()
        if call.get("id") and entry.id is None:
            entry.id = call["id"]
        if call.get("type") and entry.type is None:
            entry.type = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            self._function(entry, function)
        for key, value in call.items():
            if key not in ("index", "id", "type", "function"):
                entry.extra[key] = value

    @staticmethod
    def _function(entry: _ToolCall, function: dict[str, Any]) -> None:
        # OpenAI sends the name whole, once; a server repeating it in later
        # deltas must not get it doubled, so the first one stays.
        if function.get("name") and entry.name is None:
            entry.name = function["name"]
        if isinstance(function.get("arguments"), str):
            entry.arguments.append(function["arguments"])

    def _logprobs(self, logprobs: dict[str, Any]) -> None:
        # Each chunk carries the log probabilities of its own tokens; the
        # JSON answer has one list per field, in token order.
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                previous = self.logprobs.get(key)
                self.logprobs[key] = (previous if isinstance(previous, list) else []) + value
            else:
                self.logprobs.setdefault(key, value)

    def build(self, index: int) -> dict[str, Any]:
        tool_calls = [self.tool_calls[i].build() for i in sorted(self.tool_calls)]
        content = None if self.content is None else "".join(self.content)
        if content == "" and (tool_calls or self.function_call is not None):
            # A reply made only of tool calls has ``content: null``.
            content = None
        message: dict[str, Any] = {
            "role": self.role or "assistant",
            "content": content,
            "refusal": None if self.refusal is None else "".join(self.refusal),
            # The JSON answer always lists annotations, even when none exist.
            "annotations": self.annotations,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        if self.function_call is not None:
            message["function_call"] = {"name": self.function_call.name or "",
                                        "arguments": "".join(self.function_call.arguments)}
        return {"index": index, "message": message, "logprobs": self.logprobs, "finish_reason": self.finish_reason}


class OpenAIAccumulator:
    """Chat Completions chunks -> one ``chat.completion`` object.

    Choices (``n > 1``) are kept apart by their ``index``; tool calls within
    a choice by theirs. Usage is taken from the usage chunk that
    ``stream_options.include_usage`` adds after the finish chunks (``choices:
    []``); without it the result's ``usage`` is ``None``.
    """

    __slots__ = ("_id", "_created", "_model", "_fingerprint", "_has_fingerprint", "_service_tier",
                 "_choices", "_usage", "_done", "_failed", "_result")

    def __init__(self) -> None:
        self._id: str | None = None
        self._created: int | None = None
        self._model: str | None = None
        self._fingerprint: str | None = None
        self._has_fingerprint = False
        self._service_tier: str | None = None
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._done = False
        self._failed = False
        self._result: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        """``[DONE]`` was seen, every choice had a finish_reason before it, and
        no chunk was an error."""
        return self._result is not None

    def feed(self, event: Event) -> None:
        if self._done or self._failed:
            # Nothing follows [DONE] or an error in a well-formed stream.
            return
        if event.data.strip() == "[DONE]":
            self._done = True
            self._result = self._build()
            return
        chunk = event_json(event)
        if chunk is None or chunk.get("error") is not None:
            # OpenAI reports a failure after the 200 header as a data line
            # holding ``{"error": {...}}`` and then ends the stream.
            self._failed = True
            return
        self._envelope(chunk)
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                index = choice.get("index", 0)
                state = self._choices.get(index)
                if state is None:
                    state = self._choices[index] = _Choice()
                state.feed(choice)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]

    def _envelope(self, chunk: dict[str, Any]) -> None:
        # Azure opens with a prompt-filter chunk whose id, model and created
        # are empty, so the first *non-empty* value of each is the answer's.
        if self._id is None and chunk.get("id"):
            self._id = chunk["id"]
        if self._created is None and chunk.get("created"):
            self._created = chunk["created"]
        if self._model is None and chunk.get("model"):
            self._model = chunk["model"]
        if "system_fingerprint" in chunk:
            self._has_fingerprint = True
            if chunk["system_fingerprint"] is not None:
                self._fingerprint = chunk["system_fingerprint"]
        if self._service_tier is None and chunk.get("service_tier"):
            self._service_tier = chunk["service_tier"]

    def _build(self) -> dict[str, Any] | None:
        if not self._choices or any(c.finish_reason is None for c in self._choices.values()):
            # [DONE] without a finish_reason for every choice is not an
            # answer the API would give; do not store it.
            return None
        result: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [self._choices[i].build(i) for i in sorted(self._choices)],
            "usage": self._usage,
        }
        if self._service_tier is not None:
            result["service_tier"] = self._service_tier
        if self._has_fingerprint:
            result["system_fingerprint"] = self._fingerprint
        return result

    def result(self) -> dict[str, Any] | None:
        """The ``chat.completion`` object, or ``None`` unless ``complete``.
        A fresh copy every call, so callers may change it."""
        return copy.deepcopy(self._result)
