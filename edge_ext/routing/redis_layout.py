"""What a provider's breaker looks like in Redis, and the scripts that change it atomically.

One hash per provider, ``{prefix}:breaker:{provider}``:

| field | meaning |
|---|---|
| ``state`` | ``closed`` or ``open`` (``half_open`` only when an admin forced it) |
| ``open_until`` | wall-clock epoch seconds; peers stay away until then |
| ``failures`` | failures counted across replicas since the last success or opening (HINCRBY) |
| ``updated_at``, ``updated_by`` | when and by which replica the state last changed |
| ``forced``, ``force_seq`` | 1 when an admin set the state; a counter bumped by every admin change, so each is adopted once |

Scripts, not MULTI: the threshold check has to see the increment's result, and a script is one
round trip with no retry loop. Each script touches only KEYS[1], so Redis Cluster is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def breaker_key(prefix: str, provider: str) -> str:
    return f"{prefix}:breaker:{provider}"


# Deadlines shared with Lua must be plain decimals: Lua's tonumber() rejects "inf".
MAX_HOLD = 10 * 365 * 86400.0

# KEYS[1] = hash; ARGV = threshold, now, open_until, replica, ttl
COUNT_FAILURE = """
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state')
local deadline = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') or 0
local opened = 0
if n >= tonumber(ARGV[1]) and not (state == 'open' and deadline > tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', ARGV[3], 'failures', 0,
             'updated_at', ARGV[2], 'updated_by', ARGV[4], 'forced', 0)
  opened = 1
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return opened
"""

# ARGV = open_until, now, replica, ttl. Only ever lengthens an opening.
OPEN_SCRIPT = """
local deadline = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') or 0
if redis.call('HGET', KEYS[1], 'state') ~= 'open' or deadline < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', ARGV[1], 'failures', 0,
             'updated_at', ARGV[2], 'updated_by', ARGV[3], 'forced', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# ARGV = now, replica, ttl. A peer's opening that still runs wins over our probes' verdict.
CLOSE_SCRIPT = """
local deadline = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') or 0
if deadline <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'open_until', 0, 'failures', 0,
             'updated_at', ARGV[1], 'updated_by', ARGV[2], 'forced', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    state: str = ""  # "" = no record in Redis
    open_until: float = 0.0
    failures: int = 0
    updated_at: float = 0.0
    updated_by: str = ""
    forced: bool = False
    force_seq: int = 0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_remote(row: dict[Any, Any]) -> RemoteRecord:
    fields = {_text(k): _text(v) for k, v in row.items()}

    def number(name: str) -> float:
        try:
            return float(fields.get(name, 0))
        except ValueError:
            return 0.0

    return RemoteRecord(fields.get("state", ""), number("open_until"), int(number("failures")),
                        number("updated_at"), fields.get("updated_by", ""), fields.get("forced") == "1",
                        int(number("force_seq")))


