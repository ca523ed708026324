"""Response bodies and SSE chunks of OpenAI Chat Completions.

Field order and nulls follow what api.openai.com returns, because clients and
edge-ext's own parsers rely on keys being present (``refusal: null``,
``logprobs: null``, ``usage: null`` on every chunk when usage is requested).
Azure OpenAI answers with the same shape plus content-filter annotations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .replies import WIRE_FINISH, ReplyKnobs, ReplyPlan
from .tokens import PromptCount

# Tool-call arguments are streamed in fixed-size slices: real servers slice
# by token, and clients must concatenate them before parsing the JSON.
ARGUMENT_SLICE_CHARS = 16

_SAFE = {"filtered": False, "severity": "safe"}
_AZURE_FILTERS = {
    "hate": _SAFE,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}


def _pad_len(chunk: dict[str, Any]) -> int:
    # Padding grows as the content shrinks, evening out the chunk sizes.
    choices = chunk["choices"]
    content = (choices[0]["delta"].get("content") or "") if choices else ""
    return 4 + (-len(content)) % 12


def finish_reason(plan: ReplyPlan) -> str:
    return WIRE_FINISH[plan.finish].openai


def usage(prompt: PromptCount, plan: ReplyPlan, knobs: ReplyKnobs, n: int) -> dict[str, Any]:
    # Reasoning tokens are billed as completion tokens and reported inside
    # them; cached tokens are a subset of the prompt, never more than it.
    completion = plan.completion_tokens * n + knobs.reasoning_tokens
    return {
        "prompt_tokens": prompt.total,
        "completion_tokens": completion,
        "total_tokens": prompt.total + completion,
        "prompt_tokens_details": {
            "cached_tokens": min(knobs.cached_tokens, prompt.total),
            "audio_tokens": prompt.audio,
        },
        "completion_tokens_details": {
            "reasoning_tokens": knobs.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass(slots=True)
class Completion:
    """Everything needed to render one chat completion in either form."""

    model: str
    plan: ReplyPlan
    prompt: PromptCount
    knobs: ReplyKnobs
    n: int
    fingerprint: str
    service_tier: str
    azure: bool
    include_usage: bool = False
    obfuscate: bool = True
    id: str = field(init=False)
    created: int = field(init=False)
    tool_call_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.id = wire.new_id("chatcmpl-", 29)
        self.created = int(time.time())
        self.tool_call_ids = [wire.new_id("call_", 24) for _ in range(self.n)] if self.plan.tool_name else []

    def _arguments(self) -> str:
        return wire.dumps(self.plan.tool_arguments)

    def _message(self, index: int) -> dict[str, Any]:
        plan = self.plan
        if plan.tool_name is not None:
            call = {
                "id": self.tool_call_ids[index],
                "type": "function",
                "function": {"name": plan.tool_name, "arguments": self._arguments()},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None, "annotations": []}
        return {"role": "assistant", "content": plan.text, "refusal": None, "annotations": []}

    def body(self) -> dict[str, Any]:
        reason = finish_reason(self.plan)
        choices = []
        for index in range(self.n):
            choice: dict[str, Any] = {
                "index": index,
                "message": self._message(index),
                "logprobs": None,
                "finish_reason": reason,
            }
            if self.azure:
                choice["content_filter_results"] = _AZURE_FILTERS
            choices.append(choice)
        result: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(self.prompt, self.plan, self.knobs, self.n),
            "service_tier": self.service_tier,
            "system_fingerprint": self.fingerprint,
        }
        if self.azure:
            result["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}]
        return result

    def _chunk(self, choices: list[dict[str, Any]], totals: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = totals
        return self._frame(chunk)

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        if self.obfuscate:
            # OpenAI pads every chunk with random characters (opt out via
            # stream_options.include_obfuscation=false) so payload sizes do
            # not leak token lengths; parsers must tolerate the extra key.
            chunk["obfuscation"] = wire.new_id("", _pad_len(chunk))
        return wire.sse_data(chunk)

    def _delta(self, index: int, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}

    def frames(self) -> list[bytes]:
        """The full SSE stream: role chunk, deltas, finish chunk, optional
        usage chunk (``choices: []``), then the ``[DONE]`` sentinel."""
        plan = self.plan
        frames: list[bytes] = []
        if self.azure:
            # Azure opens with a prompt-filter chunk whose choices are empty.
            head = {
                "id": "", "object": "", "created": 0, "model": "", "choices": [],
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}],
            }
            frames.append(wire.sse_data(head))
        for index in range(self.n):
            if plan.tool_name is not None:
                start = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{
                        "index": 0,
                        "id": self.tool_call_ids[index],
                        "type": "function",
                        "function": {"name": plan.tool_name, "arguments": ""},
                    }],
                    "refusal": None,
                }
            else:
                start = {"role": "assistant", "content": "", "refusal": None}
            frames.append(self._chunk([self._delta(index, start)]))
        if plan.tool_name is not None:
            args = self._arguments()
            pieces = [args[i:i + ARGUMENT_SLICE_CHARS] for i in range(0, len(args), ARGUMENT_SLICE_CHARS)]
            for piece in pieces:
                for index in range(self.n):
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    frames.append(self._chunk([self._delta(index, delta)]))
        else:
            for piece in plan.deltas():
                for index in range(self.n):
                    frames.append(self._chunk([self._delta(index, {"content": piece})]))
        reason = finish_reason(plan)
        for index in range(self.n):
            frames.append(self._chunk([self._delta(index, {}, reason)]))
        if self.include_usage:
            frames.append(self._chunk([], usage(self.prompt, plan, self.knobs, self.n)))
        frames.append(wire.SSE_DONE)
        return frames


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in models]}
