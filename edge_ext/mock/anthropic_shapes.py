"""Response bodies and SSE events of the Anthropic Messages API.

A stream is ``message_start`` → per block (``content_block_start``,
``content_block_delta``…, ``content_block_stop``) → ``message_delta`` →
``message_stop``, with a ``ping`` after the first block start as the service
sends it. Every event is named and its JSON repeats the name in ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import wire
from .replies import WIRE_FINISH, ReplyKnobs, ReplyPlan

# Tool input JSON is streamed in slices that clients must concatenate.
PARTIAL_JSON_SLICE_CHARS = 16
# message_start reports a provisional output count; the service sends a
# small non-zero figure there and the cumulative total in message_delta.
START_OUTPUT_TOKENS = 1


def stop_reason(plan: ReplyPlan) -> str:
    return WIRE_FINISH[plan.finish].anthropic


@dataclass(slots=True)
class Message:
    model: str
    plan: ReplyPlan
    prompt_tokens: int
    knobs: ReplyKnobs
    id: str = field(init=False)
    tool_use_id: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.id = wire.new_id("msg_01", 22)
        self.tool_use_id = wire.new_id("toolu_01", 22) if self.plan.tool_name else None

    @property
    def input_tokens(self) -> int:
        # Anthropic's input_tokens excludes tokens read from or written to
        # the prompt cache; the three figures add up to the whole prompt.
        return max(0, self.prompt_tokens - self.knobs.cached_tokens - self.knobs.cache_creation_tokens)

    @property
    def output_tokens(self) -> int:
        # Extended-thinking tokens are billed as output tokens.
        return self.plan.completion_tokens + self.knobs.reasoning_tokens

    def usage(self, output_tokens: int) -> dict[str, Any]:
        result: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.knobs.cache_creation_tokens,
            "cache_read_input_tokens": self.knobs.cached_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": self.knobs.cache_creation_tokens, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if self.knobs.reasoning_tokens:
            result["output_tokens_details"] = {"thinking_tokens": self.knobs.reasoning_tokens}
        return result

    def _blocks(self) -> list[dict[str, Any]]:
        plan = self.plan
        if plan.tool_name is not None:
            return [{"type": "tool_use", "id": self.tool_use_id, "name": plan.tool_name,
                     "input": plan.tool_arguments}]
        text = plan.text
        # A turn that produced no text (e.g. an immediate stop sequence) has
        # no content blocks at all rather than an empty text block.
        return [{"type": "text", "text": text}] if text else []

    def _envelope(self, content: list[dict[str, Any]], reason: str | None, usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": self.plan.stop_sequence if reason is not None else None,
            "usage": usage,
        }

    def body(self) -> dict[str, Any]:
        return self._envelope(self._blocks(), stop_reason(self.plan), self.usage(self.output_tokens))

    def frames(self) -> list[bytes]:
        ev = wire.sse_event
        plan = self.plan
        frames = [ev("message_start", {"type": "message_start",
                                       "message": self._envelope([], None, self.usage(START_OUTPUT_TOKENS))})]
        block_count = 0
        if plan.tool_name is not None:
            start = {"type": "tool_use", "id": self.tool_use_id, "name": plan.tool_name, "input": {}}
            args = wire.dumps(plan.tool_arguments)
            # The service opens every tool input with an empty partial_json.
            pieces = [""] + [args[i:i + PARTIAL_JSON_SLICE_CHARS]
                             for i in range(0, len(args), PARTIAL_JSON_SLICE_CHARS)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            block_count = 1
        elif plan.words:
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in plan.deltas()]
            block_count = 1
        if block_count:
            frames.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": start}))
        frames.append(ev("ping", {"type": "ping"}))
        if block_count:
            for delta in deltas:
                frames.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                         "delta": delta}))
            frames.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
        final_usage = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.knobs.cache_creation_tokens,
            "cache_read_input_tokens": self.knobs.cached_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.knobs.reasoning_tokens:
            final_usage["output_tokens_details"] = {"thinking_tokens": self.knobs.reasoning_tokens}
        frames.append(ev("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(plan), "stop_sequence": plan.stop_sequence},
            "usage": final_usage,
        }))
        frames.append(ev("message_stop", {"type": "message_stop"}))
        return frames


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": m, "display_name": m.replace("-", " ").title(), "created_at": "2025-01-01T00:00:00Z"}
        for m in models
        if m.startswith("claude")
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
