"""Usage as Envoy extracted it from a JSON answer (json_to_metadata, the 2-message path): the
same figures as the answer's own ``usage`` object, read the same way (edge_ext.policy.outcome)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from edge_ext.usage.figures import MAX_REPORTED_TOKENS, Usage, _anthropic, _openai, _responses


def _implausible(a: float, b: float, c: float, d: float) -> bool:
    # Each figure compared on its own first (a max() would let a NaN hide the others). An
    # infinity, like NaN, is no count at all: read as absent, as the JSON reader does.
    return ((a > MAX_REPORTED_TOKENS or b > MAX_REPORTED_TOKENS or c > MAX_REPORTED_TOKENS or d > MAX_REPORTED_TOKENS)
            and any(MAX_REPORTED_TOKENS < n < math.inf for n in (a, b, c, d)))


def extracted(names: tuple[str, str, str, str], build: Callable[[int, int, int, int], Usage]
              ) -> Callable[[Mapping[str, float]], Usage | None]:
    """The reader of one API's four extracted figures ``names``, handed to ``build`` in that
    order. A report with a count past MAX_REPORTED_TOKENS is no report (None), as in the JSON
    readers. Envoy's extraction gives JSON numbers as doubles: a count is a whole, positive one,
    as ``_count`` reads the JSON itself (NaN and infinities fail both tests); tested inline, once
    per outcome and figure."""
    first, second, third, fourth = names

    def read(x: Mapping[str, float]) -> Usage | None:
        get = x.get
        a, b, c, d = get(first, 0), get(second, 0), get(third, 0), get(fourth, 0)
        if _implausible(a, b, c, d):
            return None
        return build(int(a) if a > 0 and a % 1 == 0 else 0, int(b) if b > 0 and b % 1 == 0 else 0,
                     int(c) if c > 0 and c % 1 == 0 else 0, int(d) if d > 0 and d % 1 == 0 else 0)

    return read


_openai_extracted = extracted(("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens"),
                              lambda prompt, cached, output, reasoning: _openai(prompt, cached, 0, output, reasoning))
_anthropic_extracted = extracted(("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"),
                                 lambda input_, output, read, written: _anthropic(input_, output, read, written, 0))
_responses_extracted = extracted(("input_tokens", "input_cached_tokens", "output_tokens", "output_reasoning_tokens"), _responses)
