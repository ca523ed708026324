"""Token usage of one exchange, read from an answer's JSON, from a stream's events, or from
Envoy's extraction of it; ``READERS`` says where each API reports it.

- ``figures``: ``Usage`` (what each figure means), the per-API arithmetic, the JSON readers;
- ``stream``: ``StreamUsage``, fed a stream's events;
- ``extracted``: the readers of Envoy's extraction (the 2-message path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_ext.usage.extracted import _anthropic_extracted, _openai_extracted, _responses_extracted
from edge_ext.usage.figures import MAX_REPORTED_TOKENS, Usage, from_anthropic, from_openai, from_responses
from edge_ext.usage.stream import StreamUsage

__all__ = ["MAX_REPORTED_TOKENS", "READERS", "Reader", "StreamUsage", "Usage", "from_anthropic", "from_openai",
           "from_responses"]


@dataclass(frozen=True, slots=True)
class Reader:
    """How one API reports usage: in a whole JSON answer, and where under "usage" each figure
    sits: the keys Envoy's json_to_metadata extracts on the 2-message path
    (edge_ext.envoy_config.outcomes), and ``extracted``, which reads those keys' numbers as
    ``body`` reads the same figures in place (edge_ext.policy.outcome). Its stream's events are
    read by ``StreamUsage``."""

    body: Callable[[dict[str, Any]], Usage | None]
    paths: dict[str, tuple[str, ...]]
    extracted: Callable[[Mapping[str, float]], Usage | None]  # None: a count past any plausible one


# One entry per API (keyed like edge_ext.apis.by_name.CLIENT_APIS): every reader of usage looks here.
READERS: dict[str, Reader] = {
    "openai": Reader(from_openai,
                     {"prompt_tokens": ("prompt_tokens",), "completion_tokens": ("completion_tokens",),
                      "cached_tokens": ("prompt_tokens_details", "cached_tokens"),
                      "reasoning_tokens": ("completion_tokens_details", "reasoning_tokens")}, _openai_extracted),
    "anthropic": Reader(from_anthropic,
                        {"input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",),
                         "cache_read_input_tokens": ("cache_read_input_tokens",),
                         "cache_creation_input_tokens": ("cache_creation_input_tokens",)}, _anthropic_extracted),
    # input_tokens and output_tokens sit where Anthropic's do: Envoy's extraction of the two
    # keys serves both (edge_ext.envoy_config.outcomes keeps one rule per key).
    "responses": Reader(from_responses,
                        {"input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",),
                         "input_cached_tokens": ("input_tokens_details", "cached_tokens"),
                         "output_reasoning_tokens": ("output_tokens_details", "reasoning_tokens")}, _responses_extracted),
}
