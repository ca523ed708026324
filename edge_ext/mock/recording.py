"""Recording of API requests so tests can assert what edge-ext forwarded.

Every API request (control endpoints excluded) is kept in a bounded ring
buffer; the per-path and per-status counters keep counting after old records
fall out of the buffer, so "how many requests reached this provider" stays
exact under load.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any, Mapping

# Bodies are kept verbatim up to this size; beyond it the text is cut (and
# flagged) so a burst of multi-MB image requests cannot exhaust memory.
MAX_RECORDED_BODY_CHARS = 1_000_000


def headers_dict(raw_headers: Any) -> dict[str, str]:
    """Lower-cased header names; repeated headers are joined with ", " as
    HTTP allows for list-valued fields."""
    result: dict[str, str] = {}
    for key, value in raw_headers.items():
        name = key.lower()
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


class Recorder:
    def __init__(self, max_records: int) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._seq = 0
        self._total = 0

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: str,
        parsed: Any,
        api: str,
    ) -> dict[str, Any]:
        self._seq += 1
        self._total += 1
        self._paths[path] += 1
        truncated = len(body) > MAX_RECORDED_BODY_CHARS
        entry: dict[str, Any] = {
            "seq": self._seq,
            "time": time.time(),
            "api": api,
            "method": method,
            "path": path,
            "query": query,
            "headers": dict(headers),
            "body": body[:MAX_RECORDED_BODY_CHARS] if truncated else body,
            "body_truncated": truncated,
            "json": parsed,
            "status": None,
            "outcome": "pending",
            "fault": None,
        }
        self._records.append(entry)
        return entry

    def finish(self, entry: dict[str, Any], status: int | None, outcome: str) -> None:
        """Note how the request ended: ``status`` is None when no response
        head was sent (dropped before the response)."""
        entry["status"] = status
        entry["outcome"] = outcome
        self._statuses[str(status) if status is not None else "none"] += 1

    def list(self, *, path: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        items = [r for r in self._records if path is None or r["path"] == path]
        if limit is not None and limit >= 0:
            items = items[-limit:] if limit else []
        return items

    def clear(self) -> int:
        cleared = len(self._records)
        self._records.clear()
        self._paths.clear()
        self._statuses.clear()
        self._total = 0
        return cleared

    def stats(self) -> dict[str, Any]:
        return {
            "total": self._total,
            "retained": len(self._records),
            "capacity": self._records.maxlen,
            "paths": dict(self._paths),
            "statuses": dict(self._statuses),
        }

    def __len__(self) -> int:
        return len(self._records)
