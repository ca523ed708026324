"""Time to first byte per provider, smoothed: what ``least_latency`` ranks by.

An EWMA rather than a window: one float per provider, O(1) per sample, and recent samples
dominate so a provider that recovers (or degrades) shows within a handful of requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol


class LatencyView(Protocol):
    def ewma(self, provider: str) -> float | None: ...


class LatencySink(Protocol):
    """Where the policy reports a provider's time to first byte (LatencyTracker, SharedLatencyTracker)."""

    def observe(self, provider: str, seconds: float) -> None: ...

    def observe_all(self, samples: Sequence[tuple[str, float]]) -> None:
        """``observe`` for each (provider, seconds) in order: the same averages as one by one."""
        ...


def fold(previous: float | None, sample: float, alpha: float) -> float:
    """One EWMA step; the first sample is taken as is so a new provider starts at its real speed."""
    return sample if previous is None else alpha * sample + (1.0 - alpha) * previous


def valid_sample(seconds: float) -> bool:
    # A bogus sample (clock hiccup, caller bug) must not poison the average or raise on the
    # hot path: it is dropped.
    return isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0


def check_alpha(alpha: float) -> float:
    if not (0.0 < alpha <= 1.0):
        raise ValueError("alpha must be in (0, 1]")
    return alpha


class LatencyTracker:
    """In-process EWMA of time to first byte per provider (seconds)."""

    def __init__(self, alpha: float = 0.3):
        self.alpha = check_alpha(alpha)
        self._ewma: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def observe(self, provider: str, seconds: float) -> None:
        if not valid_sample(seconds):
            return
        self._ewma[provider] = fold(self._ewma.get(provider), float(seconds), self.alpha)
        self._count[provider] = self._count.get(provider, 0) + 1

    def observe_all(self, samples: Sequence[tuple[str, float]]) -> None:
        for provider, seconds in samples:
            self.observe(provider, seconds)

    def ewma(self, provider: str) -> float | None:
        return self._ewma.get(provider)

    def samples(self, provider: str) -> int:
        return self._count.get(provider, 0)


class NoLatency:
    """A view with no samples at all: the default when nothing measures latency."""

    def ewma(self, provider: str) -> float | None:
        return None


NO_LATENCY = NoLatency()
