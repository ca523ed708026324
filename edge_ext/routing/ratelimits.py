"""A provider's own rate limits, read from its answers' headers, and the one rule routing applies.

OpenAI (and Azure OpenAI) answer with ``x-ratelimit-{remaining,limit,reset}-{requests,tokens}``,
the reset as a duration from now ("6m0s", "1s", "20ms"); Anthropic with
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,limit,reset}``,
the reset as an RFC 3339 instant. Both become two budgets, requests and tokens (for Anthropic
the token budget nearest its end), each with the wall-clock instant it refills at: instants,
not durations, because the record is shared by processes and read long after the answer.

The rule, the same for every strategy (docs/configuration.md, ``routing.rate_limits``):

- exhausted: a budget at 0 before its reset. The provider is skipped until the reset, like an
  open breaker; when every provider is skipped the answer is the same 503 with ``retry-after``;
- low: a budget's remaining share under ``low_fraction``. The provider moves after every
  provider that is not low, keeping the strategy's order within each part, until its reset;
- a budget whose reset has passed is full again; a budget without a readable remaining count or
  reset says nothing. No provider is held back longer than ``max_hold_s`` after the answer that
  reported it, whatever reset it announced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, TypeVar

_OPENAI = "x-ratelimit-{part}-{kind}"
_ANTHROPIC = "anthropic-ratelimit-{kind}-{part}"
_PARTS = ("remaining", "limit", "reset")
_ANTHROPIC_TOKENS = ("tokens", "input-tokens", "output-tokens")

# Every header the rule reads: what Envoy's access log must carry for the 2-message path.
HEADERS: tuple[str, ...] = (
    *(_OPENAI.format(part=part, kind=kind) for kind in ("requests", "tokens") for part in _PARTS),
    *(_ANTHROPIC.format(kind=kind, part=part) for kind in ("requests", *_ANTHROPIC_TOKENS) for part in _PARTS),
)

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True, slots=True)
class Budget:
    remaining: float
    limit: float | None  # None: the provider did not say
    reset_at: float  # wall-clock epoch seconds at which it refills

    def share(self, now: float) -> float | None:
        """What is left, as a share of the limit; None when it says nothing (refilled, no limit)."""
        if now >= self.reset_at:
            return None
        if self.remaining <= 0:
            return 0.0
        return self.remaining / self.limit if self.limit else None


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    requests: Budget | None
    tokens: Budget | None
    observed_at: float

    def budgets(self) -> tuple[Budget, ...]:
        return tuple(b for b in (self.requests, self.tokens) if b is not None)


class Standing(Enum):
    UNKNOWN = "unknown"  # no live budget: no headers, or every reset has passed
    OK = "ok"
    LOW = "low"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Verdict:
    standing: Standing
    until: float = 0.0  # when a LOW or EXHAUSTED standing ends (wall clock)


UNKNOWN = Verdict(Standing.UNKNOWN)


@dataclass(frozen=True, slots=True)
class LimitRule:
    low_fraction: float = 0.1
    max_hold_s: float = 300.0

    def judge(self, limits: ProviderLimits | None, now: float) -> Verdict:
        if limits is None:
            return UNKNOWN
        horizon = limits.observed_at + self.max_hold_s
        if now >= horizon:
            return UNKNOWN
        live = [(b, share) for b in limits.budgets() if (share := b.share(now)) is not None]
        if not live:
            return UNKNOWN
        empty = [b.reset_at for b, share in live if share <= 0]
        if empty:
            return Verdict(Standing.EXHAUSTED, min(max(empty), horizon))
        low = [b.reset_at for b, share in live if share < self.low_fraction]
        if low:
            return Verdict(Standing.LOW, min(max(low), horizon))
        return Verdict(Standing.OK)


class LimitsView(Protocol):
    def limits(self, provider: str) -> ProviderLimits | None: ...


class LimitsSink(Protocol):
    def observe(self, provider: str, limits: ProviderLimits) -> None: ...


class NoLimits:
    """A view that knows nothing: every provider is UNKNOWN, and observations are dropped."""

    def limits(self, provider: str) -> ProviderLimits | None:
        return None

    def observe(self, provider: str, limits: ProviderLimits) -> None:
        return None


NO_LIMITS = NoLimits()

T = TypeVar("T")


def arrange(ordered: Sequence[T], verdicts: Sequence[Verdict]) -> tuple[list[T], list[T]]:
    """The strategy's order with the rule applied: (usable, low ones last; exhausted, skipped)."""
    ahead, behind, skipped = [], [], []
    for item, verdict in zip(ordered, verdicts):
        if verdict.standing is Standing.EXHAUSTED:
            skipped.append(item)
        elif verdict.standing is Standing.LOW:
            behind.append(item)
        else:
            ahead.append(item)
    return ahead + behind, skipped


# --- Parsing -------------------------------------------------------------------------------


def parse(headers: Mapping[str, str], now: float) -> ProviderLimits | None:
    """The budgets an answer's headers report (names lower-case), None when they report none.
    A value that does not parse is ignored, as if the header were absent."""
    if _OPENAI_NAMES["requests"][0] in headers or _OPENAI_NAMES["tokens"][0] in headers:
        requests, tokens = _openai(headers, "requests", now), _openai(headers, "tokens", now)
    elif any(names[0] in headers for names in _ANTHROPIC_NAMES.values()):
        requests = _anthropic(headers, "requests", now)
        found = [b for kind in _ANTHROPIC_TOKENS if (b := _anthropic(headers, kind, now)) is not None]
        tokens = min(found, key=lambda b: _tightness(b, now)) if found else None
    else:
        return None  # the common case for providers that send none: two lookups
    if requests is None and tokens is None:
        return None
    return ProviderLimits(requests, tokens, now)


def _tightness(budget: Budget, now: float) -> tuple[float, float]:
    share = budget.share(now)
    return (1.0 if share is None else share, -budget.reset_at)


# (remaining, limit, reset) header names per budget kind.
_OPENAI_NAMES = {kind: tuple(_OPENAI.format(part=part, kind=kind) for part in _PARTS) for kind in ("requests", "tokens")}
_ANTHROPIC_NAMES = {kind: tuple(_ANTHROPIC.format(kind=kind, part=part) for part in _PARTS)
                    for kind in ("requests", *_ANTHROPIC_TOKENS)}


def _openai(headers: Mapping[str, str], kind: str, now: float) -> Budget | None:
    remaining, limit, reset = _OPENAI_NAMES[kind]
    seconds = parse_duration(headers.get(reset))
    return _budget(headers.get(remaining), headers.get(limit), None if seconds is None else now + seconds)


def _anthropic(headers: Mapping[str, str], kind: str, now: float) -> Budget | None:
    remaining, limit, reset = _ANTHROPIC_NAMES[kind]
    return _budget(headers.get(remaining), headers.get(limit), parse_instant(headers.get(reset)))


def _budget(remaining: str | None, limit: str | None, reset_at: float | None) -> Budget | None:
    left = parse_count(remaining)
    if left is None or reset_at is None:
        return None  # without both it cannot say how much is left nor until when
    cap = parse_count(limit)
    return Budget(left, cap if cap else None, reset_at)


def parse_count(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_duration(value: str | None) -> float | None:
    """Seconds from a Go-style duration ("6m0s", "1s", "20ms", "1h2m3.5s") or a plain number
    of seconds; None when it is neither."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    plain = parse_count(text)
    if plain is not None:
        return plain
    total, end = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != end:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        end = match.end()
    return total if end == len(text) and end else None


def parse_instant(value: str | None) -> float | None:
    """Epoch seconds from an RFC 3339 instant with its offset; None otherwise."""
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None  # an instant without its offset could be any of 26 hours
    return instant.timestamp()


class MemoryLimits:
    """One process's view (tests, and the default of a policy built without shared state)."""

    def __init__(self) -> None:
        self._limits: dict[str, ProviderLimits] = {}

    def observe(self, provider: str, limits: ProviderLimits) -> None:
        self._limits[provider] = limits

    def limits(self, provider: str) -> ProviderLimits | None:
        return self._limits.get(provider)
