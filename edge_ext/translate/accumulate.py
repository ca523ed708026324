"""Fold a complete SSE answer into the JSON answer the same API would give.

The response cache stores one entry per request whatever its ``stream``
flag, and it stores the non-streamed shape: an OpenAI ``chat.completion`` or
an Anthropic ``message``. These accumulators turn a streamed answer into that
shape, event by event, as the stream passes through.

Only a stream the upstream *finished* may be stored. Both APIs mark a good
end explicitly (``data: [DONE]`` / ``event: message_stop``) and report a
failure after the 200 header as an in-stream error, after which they send
nothing more. A stream without its end marker was cut (connection reset,
timeout), and its JSON would silently lack the rest of the answer; so
``complete`` is true only for a stream that ended properly and carried no
error, and ``result()`` is ``None`` otherwise.

Pure: callers parse the bytes with :class:`edge_ext.sse.SSEParser` and feed
every :class:`edge_ext.sse.Event` in order.
"""

from __future__ import annotations

from .accumulate_anthropic import TOOL_INPUT_BLOCKS, AnthropicAccumulator
from .accumulate_openai import OpenAIAccumulator

__all__ = ["OpenAIAccumulator", "AnthropicAccumulator", "TOOL_INPUT_BLOCKS"]
