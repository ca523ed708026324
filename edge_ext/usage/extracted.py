"""Usage as Envoy extracted it from a JSON answer (json_to_metadata, the 2-message path): the
same figures as the answer's own ``usage`` object, read the same way (edge_ext.policy.outcome)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from edge_ext.usage.figures import MAX_REPORTED_TOKENS, Usage, _anthropic, _openai, _responses


def _implausible(a: float, b: float, c: float, d: float) -> bool:
    # Each figure compared on its own first (a max() would let a NaN hide the others). An
    # infinity, like NaN, is no count at all: read as absent, as the JSON reader does.
    return ((a > MAX_REPORTED_TOKENS or b > MAX_REPORTED_TOKENS or c > MAX_REPORTED_TOKENS or d > MAX_REPORTED_TOKENS)
            and any(MAX_REPORTED_TOKENS < n < math.inf for n in (a, b, c, d)))


# Envoy's extraction gives JSON numbers as doubles: a count is a whole, positive one, as ``_count``
# reads the JSON itself (NaN and infinities fail both tests). Inline: once per outcome and figure.
# A report with a count past MAX_REPORTED_TOKENS is no report (None), as in the JSON readers.
def _openai_extracted(x: Mapping[str, float]) -> Usage | None:
    get = x.get
    p, c, o, r = get("prompt_tokens", 0), get("cached_tokens", 0), get("completion_tokens", 0), get("reasoning_tokens", 0)
    if _implausible(p, c, o, r):
        return None
    return _openai(int(p) if p > 0 and p % 1 == 0 else 0, int(c) if c > 0 and c % 1 == 0 else 0, 0,
                   int(o) if o > 0 and o % 1 == 0 else 0, int(r) if r > 0 and r % 1 == 0 else 0)


def _anthropic_extracted(x: Mapping[str, float]) -> Usage | None:
    get = x.get
    i, o = get("input_tokens", 0), get("output_tokens", 0)
    r, w = get("cache_read_input_tokens", 0), get("cache_creation_input_tokens", 0)
    if _implausible(i, o, r, w):
        return None
    return _anthropic(int(i) if i > 0 and i % 1 == 0 else 0, int(o) if o > 0 and o % 1 == 0 else 0,
                      int(r) if r > 0 and r % 1 == 0 else 0, int(w) if w > 0 and w % 1 == 0 else 0, 0)


def _responses_extracted(x: Mapping[str, float]) -> Usage | None:
    get = x.get
    i, c = get("input_tokens", 0), get("input_cached_tokens", 0)
    o, r = get("output_tokens", 0), get("output_reasoning_tokens", 0)
    if _implausible(i, c, o, r):
        return None
    return _responses(int(i) if i > 0 and i % 1 == 0 else 0, int(c) if c > 0 and c % 1 == 0 else 0,
                      int(o) if o > 0 and o % 1 == 0 else 0, int(r) if r > 0 and r % 1 == 0 else 0)

