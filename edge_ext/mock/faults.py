"""Fault injection: per-request ``x-mock-*`` headers and a scripted queue.

A test either marks one request (headers) or scripts the server so that
"the next N requests" misbehave (``POST /_mock/faults``). Scripted faults are
consumed in FIFO order by API requests only; header values override the
fields of a scripted fault for that request. A scripted entry may also carry
``headers``: ``x-mock-*`` headers (faults and reply knobs alike) applied as if
the request had carried them, for requests that come through a gateway which
does not forward client headers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from .settings import MAX_LATENCY_MS

DROP_MID_STREAM = "mid-stream"
DROP_BEFORE_RESPONSE = "before-response"
DROP_MODES = (DROP_MID_STREAM, DROP_BEFORE_RESPONSE)

# Events written before a mid-stream drop or in-stream error: enough for the
# client to have parsed the stream start and at least one content delta.
DEFAULT_CUT_AFTER = 4
MAX_CHUNK_DELAY_MS = 60_000
MAX_CUT_AFTER = 100_000
MAX_SCRIPTED = 1_000
# Retry-After sent with a 429 unless the fault names one: rate-limit
# responses from both providers carry it, and SDK retry logic reads it.
DEFAULT_RETRY_AFTER_429 = "1"


class FaultError(ValueError):
    """A fault header or control payload is malformed."""


@dataclass(slots=True)
class FaultSpec:
    status: int | None = None
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    drop: str | None = None
    drop_after: int | None = None
    retry_after: str | None = None
    stream_error: int | None = None

    def override(self, other: "FaultSpec") -> "FaultSpec":
        """This spec with every field ``other`` sets replaced by ``other``'s."""
        merged = FaultSpec(**asdict(self))
        for f in fields(FaultSpec):
            value = getattr(other, f.name)
            if value not in (None, 0):
                setattr(merged, f.name, value)
        return merged

    @property
    def cut_after(self) -> int:
        return DEFAULT_CUT_AFTER if self.drop_after is None else self.drop_after

    def retry_after_header(self) -> str | None:
        if self.retry_after is not None:
            return self.retry_after
        return DEFAULT_RETRY_AFTER_429 if self.status == 429 else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FaultError(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not lo <= number <= hi:
        raise FaultError(f"{what} must be within {lo}..{hi}, got {value!r}")
    return number


def _retry_after(value: Any, what: str) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise FaultError(f"{what} must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= 86_400:
        raise FaultError(f"{what} must be within 0..86400 seconds, got {value!r}")
    # Integral values go out as integers: HTTP's Retry-After is delta-seconds.
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _drop(value: Any, what: str) -> str:
    if value not in DROP_MODES:
        raise FaultError(f"{what} must be one of {', '.join(DROP_MODES)}, got {value!r}")
    return value


def _build(get: Any, prefix: str) -> FaultSpec:
    spec = FaultSpec()
    if (v := get("status")) is not None:
        spec.status = _int(v, f"{prefix}status", 400, 599)
    if (v := get("latency-ms")) is not None:
        spec.latency_ms = _int(v, f"{prefix}latency-ms", 0, MAX_LATENCY_MS)
    if (v := get("chunk-delay-ms")) is not None:
        spec.chunk_delay_ms = _int(v, f"{prefix}chunk-delay-ms", 0, MAX_CHUNK_DELAY_MS)
    if (v := get("drop")) is not None:
        spec.drop = _drop(v, f"{prefix}drop")
    if (v := get("drop-after")) is not None:
        spec.drop_after = _int(v, f"{prefix}drop-after", 0, MAX_CUT_AFTER)
    if (v := get("retry-after")) is not None:
        spec.retry_after = _retry_after(v, f"{prefix}retry-after")
    if (v := get("stream-error")) is not None:
        spec.stream_error = _int(v, f"{prefix}stream-error", 400, 599)
    return spec


_HEADER_NAMES = tuple(
    "x-mock-" + n
    for n in ("status", "latency-ms", "chunk-delay-ms", "drop", "drop-after", "retry-after", "stream-error")
)


def parse_headers(headers: Mapping[str, str]) -> FaultSpec | None:
    """Fault requested by ``x-mock-*`` headers, or ``None`` when there is none."""
    if not any(name in headers for name in _HEADER_NAMES):
        return None
    return _build(lambda key: headers.get("x-mock-" + key), "x-mock-")


_PAYLOAD_KEYS = {
    "status": "status",
    "latency_ms": "latency-ms",
    "chunk_delay_ms": "chunk-delay-ms",
    "drop": "drop",
    "drop_after": "drop-after",
    "retry_after": "retry-after",
    "stream_error": "stream-error",
}


@dataclass(slots=True)
class ScriptedFault:
    spec: FaultSpec
    remaining: int  # -1: until cleared
    path: str | None
    fired: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "count": self.remaining, "path": self.path, "fired": self.fired,
                "headers": self.headers}


def _scripted_headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise FaultError("headers must be an object of header names to string values")
    headers = {k.lower(): v for k, v in value.items()}
    foreign = sorted(k for k in headers if not k.startswith("x-mock-"))
    if foreign:
        raise FaultError(f"only x-mock-* headers may be scripted, not {', '.join(foreign)}")
    parse_headers(headers)  # fault headers are checked now; reply knobs when they are used
    return headers


def parse_payload(payload: Any) -> ScriptedFault:
    """Validate one ``POST /_mock/faults`` object (unknown keys are rejected
    so a typo cannot silently script a no-op)."""
    if not isinstance(payload, dict):
        raise FaultError("a fault must be a JSON object")
    unknown = set(payload) - set(_PAYLOAD_KEYS) - {"count", "path", "headers"}
    if unknown:
        raise FaultError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    spec = _build(lambda key: payload.get(_key_for(key)), "")
    count = payload.get("count", 1)
    count = _int(count, "count", -1, 10_000_000)
    if count == 0:
        raise FaultError("count must be positive, or -1 for 'until cleared'")
    path = payload.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise FaultError("path must be a string starting with '/'")
    headers = _scripted_headers(payload.get("headers", {}))
    if spec == FaultSpec() and not headers:
        raise FaultError("fault has no effect: set status, latency_ms, chunk_delay_ms, drop, stream_error or headers")
    return ScriptedFault(spec=spec, remaining=count, path=path, headers=headers)


def _key_for(header_suffix: str) -> str:
    return header_suffix.replace("-", "_")


class FaultQueue:
    """Scripted faults, consumed first-in first-out by matching requests."""

    def __init__(self, max_len: int = MAX_SCRIPTED) -> None:
        self._items: deque[ScriptedFault] = deque()
        self._max_len = max_len

    def add(self, payload: Any) -> list[ScriptedFault]:
        batch = payload if isinstance(payload, list) else [payload]
        parsed = [parse_payload(item) for item in batch]
        if len(self._items) + len(parsed) > self._max_len:
            raise FaultError(f"at most {self._max_len} scripted faults may be queued")
        self._items.extend(parsed)
        return parsed

    def take(self, path: str) -> FaultSpec | None:
        item = self.take_scripted(path)
        return item.spec if item is not None else None

    def take_scripted(self, path: str) -> ScriptedFault | None:
        if not self._items:
            return None
        for item in self._items:
            if item.path is None or path.startswith(item.path):
                item.fired += 1
                if item.remaining > 0:
                    item.remaining -= 1
                    if item.remaining == 0:
                        self._items.remove(item)
                return item
        return None

    def clear(self) -> int:
        cleared = len(self._items)
        self._items.clear()
        return cleared

    def snapshot(self) -> list[dict[str, Any]]:
        return [item.to_dict() for item in self._items]

    def __len__(self) -> int:
        return len(self._items)
