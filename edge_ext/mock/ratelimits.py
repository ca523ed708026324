"""Rate-limit headers as OpenAI and Anthropic send them, from a scripted budget.

Off unless configured (``MockSettings.rate_limits`` or ``POST /_mock/ratelimits``). Then every
answer to an API call (POST) carries the budget left after that call: OpenAI's
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with the reset as a duration
("1m30s", "250ms"), Anthropic's ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``
with the reset as an RFC 3339 instant. Each call takes one request from the budget (never below
0; the mock does not refuse the call, the edge is expected to stop sending); tokens stay as
scripted. When the window ends both budgets refill to their limits and a new window starts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

MAX_WINDOW_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    requests_limit: int = 10_000
    requests_remaining: int | None = None  # at the start of the first window; None: the limit
    tokens_limit: int = 2_000_000
    tokens_remaining: int | None = None
    window_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("requests_limit", "tokens_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1")
        for name, cap in (("requests_remaining", self.requests_limit), ("tokens_remaining", self.tokens_limit)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= cap):
                raise ValueError(f"{name} must be an integer within 0..{cap}")
        if not isinstance(self.window_s, (int, float)) or not 0 < self.window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be a number within (0, {MAX_WINDOW_S:g}]")

    @classmethod
    def from_json(cls, payload: Any) -> "RateLimitSpec":
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(payload) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        return cls(**payload)


class RateLimitWindow:
    """The budget as it runs down; ``clock`` is wall-clock seconds (the reset instants are)."""

    def __init__(self, spec: RateLimitSpec, clock=time.time):
        self.spec = spec
        self._clock = clock
        self._ends = clock() + spec.window_s
        self._requests = spec.requests_limit if spec.requests_remaining is None else spec.requests_remaining
        self._tokens = spec.tokens_limit if spec.tokens_remaining is None else spec.tokens_remaining

    def take(self, anthropic: bool) -> dict[str, str]:
        """One call's headers, the call counted."""
        now = self._clock()
        if now >= self._ends:
            self._ends = now + self.spec.window_s
            self._requests, self._tokens = self.spec.requests_limit, self.spec.tokens_limit
        self._requests = max(0, self._requests - 1)
        return self._headers(now, anthropic)

    def _headers(self, now: float, anthropic: bool) -> dict[str, str]:
        spec, headers = self.spec, {}
        for kind, limit, left in (("requests", spec.requests_limit, self._requests), ("tokens", spec.tokens_limit, self._tokens)):
            if anthropic:
                prefix = f"anthropic-ratelimit-{kind}-"
                headers |= {prefix + "limit": str(limit), prefix + "remaining": str(left), prefix + "reset": rfc3339(self._ends)}
            else:
                headers |= {f"x-ratelimit-limit-{kind}": str(limit), f"x-ratelimit-remaining-{kind}": str(left),
                            f"x-ratelimit-reset-{kind}": go_duration(self._ends - now)}
        return headers

    def snapshot(self) -> dict[str, Any]:
        return {**asdict(self.spec), "requests_left": self._requests, "tokens_left": self._tokens,
                "resets_in_s": round(max(0.0, self._ends - self._clock()), 3)}


def go_duration(seconds: float) -> str:
    """OpenAI's spelling: "20ms" under a second, else "[Nh][Nm]S.sss s" ("6m0s", "1.5s")."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{round(secs, 3):g}s"
    if minutes or hours:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
