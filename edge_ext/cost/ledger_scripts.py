"""The Lua scripts of the Redis budget ledger (edge_ext.cost.ledger_redis): each admission,
settlement and write of kept spend is one script, atomic across replicas. The keys one script
uses share a ``{scope:period}`` hash tag, so they live in one Redis Cluster slot.
"""

from __future__ import annotations

# How long the ids of kept spend already written are remembered: a write whose reply was lost is
# sent again within seconds of Redis answering (the next flush), far inside this.
WRITTEN_TTL_S = 3 * 86400

# A due hold's member ends in ':due': expired unsettled, it becomes estimated spend.
SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
for _, member in ipairs(expired) do
  local micros = tonumber(string.match(member, ':(%d+)$') or string.match(member, ':(%d+):due$'))
  redis.call('DECRBY', KEYS[2], micros)
  if string.sub(member, -4) == ':due' then
    redis.call('INCRBY', KEYS[1], micros)
    redis.call('INCRBY', KEYS[4], micros)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1]) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = tonumber(redis.call('GET', KEYS[2]) or '0')
local estimated = tonumber(redis.call('GET', KEYS[4]) or '0')
"""
# KEYS: spend, held, holds, estimated. ARGV: now.
TOTALS = SWEEP + "return {spent, held, estimated}"
# ARGV: now, limit, micros, member, expires, ttl.
RESERVE = SWEEP + """
if spent + held >= tonumber(ARGV[2]) then return {0, spent, held, estimated} end
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return {1, spent, held, estimated}
"""
# KEYS: spend, held, holds, estimated. ARGV: member, held micros, spent micros, estimated (0/1),
# due (0/1): a due hold no longer held was charged at its expiry.
SETTLE = """
local held = redis.call('ZREM', KEYS[3], ARGV[1]) == 1
if held then redis.call('DECRBY', KEYS[2], ARGV[2]) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[5] == '1' and not held then return spent end
if tonumber(ARGV[3]) > 0 then
  spent = redis.call('INCRBY', KEYS[1], ARGV[3])
  if ARGV[4] == '1' then redis.call('INCRBY', KEYS[4], ARGV[3]) end
end
return spent
"""
# KEYS: counter. ARGV: n, limit, ttl.
TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[2]) then return {0, used} end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
# KEYS: counter. ARGV: n (negative gives back part of a reservation), ttl. Never below zero.
ADJUST = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total < 0 then redis.call('SET', KEYS[1], 0); total = 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return total
"""
# KEYS: spend, estimated, written (ids already added). ARGV: hold id, micros, estimated (0/1),
# ttl of the written set. Spend kept while Redis was away, added once per hold id.
CHARGE_ONCE = """
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  redis.call('INCRBY', KEYS[1], ARGV[2])
  if ARGV[3] == '1' then redis.call('INCRBY', KEYS[2], ARGV[2]) end
end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
