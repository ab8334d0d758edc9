"""Lua scripts the Redis store runs, one per algorithm, each atomic on one key.

All times are integer microseconds from Redis' own clock (TIME), so processes and hosts with
different clocks share one timeline; scripts are replicated by effects (Redis >= 5 default),
which makes calling TIME before a write safe. Every key gets a TTL of its own reset time, so an
idle key costs Redis nothing. Each script returns {verdict, remaining, reset_us, retry_us}.
"""

from __future__ import annotations

import hashlib

# GCRA (redis-cell's algorithm): KEYS[1] holds the TAT. ARGV: interval_us, burst, cost.
GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local span = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
if new_tat - now > span then
  local remaining = math.floor((span - (tat - now)) / interval)
  return {0, remaining, tat - now, new_tat - now - span}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((span - (new_tat - now)) / interval), new_tat - now, 0}
"""

# GCRA lease: grant up to `want` units at once (0 if none). ARGV: interval_us, burst, want.
# retry_us = how long until `want` units are available again, so a process that got less than
# it asked for waits for a whole slice instead of calling once per token.
GCRA_LEASE = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local span = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local available = math.floor((now + span - tat) / interval + 1e-9)
local granted = math.min(want, available)
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.0f', tat),
             'PX', math.ceil((tat - now) / 1000) + 1)
end
local retry = tat + want * interval - span - now
if retry < 0 then retry = 0 end
return {granted, math.floor((now + span - tat) / interval + 1e-9), tat - now, retry}
"""

# Sliding window counter: KEYS[1] is a hash {w = window index, c = current, p = previous}.
# ARGV: window_us, burst, cost.
SLIDING_WINDOW = """
local length = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local index = math.floor(now / length)
local h = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(h[1]) or index
local current = tonumber(h[2]) or 0
local previous = tonumber(h[3]) or 0
if w < index then
  if w == index - 1 then previous = current else previous = 0 end
  current = 0
end
local fraction = (now - index * length) / length
local estimate = previous * (1 - fraction) + current
local to_end = (1 - fraction) * length
if estimate + cost <= burst + 1e-9 then
  current = current + cost
  redis.call('HSET', KEYS[1], 'w', index, 'c', current, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], math.ceil(2 * length / 1000) + 1)
  return {1, math.floor(burst - estimate - cost + 1e-9), to_end + length, 0}
end
local room = burst - current - cost
local retry
if room >= 0 and previous > 0 then
  retry = ((1 - room / previous) - fraction) * length
else
  local wait = 0
  if current > burst - cost then wait = 1 - (burst - cost) / current end
  retry = to_end + wait * length
end
if retry < 0 then retry = 0 end
local remaining = math.floor(burst - estimate + 1e-9)
if remaining < 0 then remaining = 0 end
return {0, remaining, to_end + length, retry}
"""


def sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()
