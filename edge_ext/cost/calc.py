"""What an exchange costs, and a cheap guess of a request's prompt size before it is sent.

Cost follows the :class:`~edge_ext.usage.Usage` semantics (no token is counted twice)::

    usd = (input * price.input + cached_input * price.cached_input
           + cache_write * price.cache_write + output * price.output) / 1_000_000

Reasoning tokens are already inside ``output_tokens`` and are not added again.

Rounding: the sum is exact (integer tokens times decimal prices, computed with 60 significant
digits), then divided by one million (exact in decimal) and quantized once to 1e-9 USD with
ROUND_HALF_EVEN. A nano-dollar is far below any price step, and rounding once per exchange
with banker's rounding keeps sums of many exchanges unbiased.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from edge_ext.cost.pricing import Price, PriceTable
from edge_ext.frozen import slot_init
from edge_ext.usage import Usage

__all__ = [
    "ATTACHMENT_TOKENS",
    "CostResult",
    "QUANTUM",
    "Rates",
    "cost",
    "cost_at",
    "cost_of",
    "estimate_input_tokens",
    "requested_output_tokens",
    "text_chars",
]

QUANTUM = Decimal("0.000000001")
_PER_MILLION = Decimal(1_000_000)
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
# Past this, ``cost``'s arithmetic leaves its precision (and refuses the figure): ``cost_at``
# hands such counts to it rather than price them with unbounded integers.
_EXACT_BELOW = 10 ** (_CONTEXT.prec - 2)


@slot_init
@dataclass(frozen=True, slots=True)
class CostResult:
    """The cost of one exchange; ``usd`` is None exactly when the model has no price."""

    usd: Decimal | None
    priced: bool

    def __post_init__(self) -> None:
        if self.priced != (self.usd is not None):
            raise ValueError("a priced result needs usd, an unpriced one must not have it")

    @classmethod
    def unpriced(cls) -> "CostResult":
        return cls(None, False)


def cost(usage: Usage, price: Price) -> Decimal:
    """USD cost of ``usage`` at ``price``, quantized to 1e-9 (see the module docstring)."""
    parts = (
        (usage.input_tokens, price.input),
        (usage.cached_input_tokens, price.cached_input),
        (usage.cache_write_tokens, price.cache_write),
        (usage.output_tokens, price.output),
    )
    total = Decimal(0)
    for tokens, per_million in parts:
        if tokens < 0:
            # Usage parsers never produce this; a negative count would be a refund in disguise.
            raise ValueError(f"token counts must be >= 0, got {usage!r}")
        total = _CONTEXT.add(total, _CONTEXT.multiply(Decimal(tokens), per_million))
    return _CONTEXT.divide(total, _PER_MILLION).quantize(QUANTUM, context=_CONTEXT)


class Rates:
    """One price as whole numbers: each figure times 10**``places``, the fewest places that keep
    all four exact. ``cost_at`` then sums integers, with the rounding of ``cost``: the same
    Decimal, for a fraction of its arithmetic (an outcome is priced per entry)."""

    __slots__ = ("places", "input", "cached_input", "cache_write", "output", "price")

    def __init__(self, price: Price):
        figures = (price.input, price.cached_input, price.cache_write, price.output)
        self.price = price
        self.places = max(0, *(-figure.as_tuple().exponent for figure in figures))
        self.input, self.cached_input, self.cache_write, self.output = (int(figure.scaleb(self.places, _CONTEXT))
                                                                        for figure in figures)


def cost_at(usage: Usage, rates: Rates) -> Decimal:
    """``cost(usage, rates.price)``, in integers: nano-dollars are the sum over 10**(places - 3),
    rounded half to even like ``cost``'s one quantization."""
    i, c, w, o = usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens
    if i < 0 or c < 0 or w < 0 or o < 0:
        raise ValueError(f"token counts must be >= 0, got {usage!r}")
    total = i * rates.input + c * rates.cached_input + w * rates.cache_write + o * rates.output
    if total >= _EXACT_BELOW:  # counts no provider reports: the same refusal as ``cost``
        return cost(usage, rates.price)
    # usd = total / 10**places / 10**6; in nano-dollars, total / 10**(places - 3).
    shift = rates.places - 3
    if shift <= 0:
        nanos = total * 10 ** -shift
    else:
        nanos, rest = divmod(total, 10 ** shift)
        half = 5 * 10 ** (shift - 1)
        if rest > half or (rest == half and nanos & 1):
            nanos += 1
    return Decimal(nanos).scaleb(-9, _CONTEXT)


def cost_of(usage: Usage, model: str, table: PriceTable) -> CostResult:
    """The cost of ``usage`` for ``model``; unpriced models give ``CostResult(None, False)``."""
    price = table.price(model)
    if price is None:
        return CostResult.unpriced()
    return CostResult(cost(usage, price), True)


# --- estimating a request's prompt tokens ------------------------------------------------------
#
# Rules (a heuristic for routing and TPM pre-checks; the provider's usage report is the truth):
# * text: ceil(characters / 4), OpenAI's rule of thumb for English; code and non-Latin scripts
#   run denser, so this under-counts them by up to ~2x;
# * each message: +4 for its role and separators, +3 once for the reply priming (OpenAI's
#   cookbook accounting; Anthropic's framing is similar);
# * each image, audio or file part: a flat ATTACHMENT_TOKENS, between OpenAI's 765 for a
#   1024x1024 high-detail image and Anthropic's ~1,600 for a 1.15 MP image. Their base64 payload
#   is never counted as text: a 1 MB image would otherwise count as 350K tokens;
# * tool and response-format schemas: their compact JSON text, as providers render them into the
#   prompt;
# * token-id prompts (lists of integers): one token each.

ATTACHMENT_TOKENS = 1000
_PER_MESSAGE = 4
_REPLY_PRIMING = 3
_TEXT_FIELDS = frozenset({"messages", "system", "prompt", "input", "instructions"})
_SCHEMA_FIELDS = frozenset({"tools", "functions", "response_format"})
_ATTACHMENT_TYPES = frozenset(
    {"image_url", "image", "input_image", "input_audio", "audio", "file", "input_file", "document"}
)
# Structure and opaque ids a provider does not render as prompt text.
_SKIP_KEYS = frozenset(
    {"type", "role", "id", "tool_call_id", "tool_use_id", "cache_control", "detail", "media_type",
     "format", "index", "signature", "status"}
)
_INLINE_DATA_MIN = 256


def _text_units(value: Any) -> tuple[int, int, int]:
    """(characters, integer tokens, attachments) in ``value``, walked without recursion.

    Strings are counted where they are found, only containers are stacked: most of a request's
    values are strings, and each one stacked cost a push, a pop and type tests more."""
    chars = ints = attachments = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str) and kind in _ATTACHMENT_TYPES:
                attachments += 1
                continue
            for key, child in item.items():
                if isinstance(child, str):
                    if key in _SKIP_KEYS:
                        continue
                    if len(child) >= _INLINE_DATA_MIN and child.startswith("data:"):
                        attachments += 1
                    else:
                        chars += len(child)
                elif isinstance(child, (dict, list)) and key not in _SKIP_KEYS:
                    stack.append(child)
        elif isinstance(item, list):
            for child in item:
                if isinstance(child, dict):  # first: most arrays are of messages or parts
                    stack.append(child)
                elif isinstance(child, str):
                    if len(child) >= _INLINE_DATA_MIN and child.startswith("data:"):
                        attachments += 1
                    else:
                        chars += len(child)
                elif isinstance(child, int) and not isinstance(child, bool):
                    ints += 1  # a token id (an object's numbers are settings, never counted)
                else:
                    stack.append(child)
        elif isinstance(item, str):  # only ever the value walked
            stack.append([item])
    return chars, ints, attachments


def text_chars(value: Any) -> int:
    """Characters of text in a JSON value, by the rules above (structure, ids and inline data left out)."""
    return _text_units(value)[0]


def _schema_chars(value: Any) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError):
        return 0


def _plain_chars(messages: list) -> int | None:
    """``_text_units(messages)``'s characters when every message is exactly a role and a string
    content (the common chat body; its ints and attachments are then 0); None for any other
    shape, which the walk counts. A role is never counted, whatever its value."""
    chars = 0
    for message in messages:
        content = message.get("content") if type(message) is dict else None
        if (type(content) is not str or len(message) != 2 or "role" not in message
                or (len(content) >= _INLINE_DATA_MIN and content.startswith("data:"))):
            return None
        chars += len(content)
    return chars


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """A cheap estimate of the prompt tokens of an OpenAI- or Anthropic-shaped request body."""
    if not isinstance(body, dict):
        return 0
    chars = ints = attachments = 0
    # The fields present, not every field a body may have: a chat body has two or three.
    for field, value in body.items():
        if field in _TEXT_FIELDS:
            plain = _plain_chars(value) if field == "messages" and type(value) is list else None
            if plain is not None:
                chars += plain
                continue
            c, i, a = _text_units(value)
            chars, ints, attachments = chars + c, ints + i, attachments + a
        elif field in _SCHEMA_FIELDS and value:
            chars += _schema_chars(value)
    messages = body.get("messages")
    framing = _PER_MESSAGE * len(messages) + _REPLY_PRIMING if isinstance(messages, list) and messages else 0
    return -(-chars // 4) + ints + framing + attachments * ATTACHMENT_TOKENS


def requested_output_tokens(body: dict[str, Any]) -> int | None:
    """The output cap the request asks for (OpenAI or Anthropic spelling), or None."""
    if not isinstance(body, dict):
        return None
    # max_completion_tokens supersedes max_tokens in OpenAI's API; max_output_tokens is the
    # Responses API's name; Anthropic requires max_tokens.
    for key in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
