"""The shared tier: small responses kept in Redis for the whole fleet, beside each worker's
local tier (docs/cache.md, "Shared tier").

- Lookup: a local miss asks Redis (one MGET of the primary key's Vary names and of the entry
  without variants; a second GET when the response varies), waiting at most `timeout`. A slow
  or unreachable Redis is a miss (counted as `error`), never an error to the client. A found
  entry goes into the local tier and is served from there on.
- Write: a response the local tier stored, at most `max_entry_size`, is written in the
  background (the client never waits for it) with a TTL of what is left of its freshness and
  stale windows; at most MAX_WRITES writes are in flight per worker, more are dropped.
- Purge: by key (base), prefix and tag, through index sets kept beside the entries
  (`<prefix>:b:<base>` the entry keys of a base, `<prefix>:t:<tag>` the entry keys of a tag,
  `<prefix>:bases` every base); each index set lives as long as its longest entry. All keys
  start with `prefix`, whose hash tag puts them in one slot on Redis Cluster.

Entries are encoded as a 4-byte length, a JSON head (status, fields, freshness, validators,
tags, Vary names) and the body. The age travels with it: the age when written plus the wall
time since (RFC 9111 §4.2.3 across caches), so a copy read later is as old as the original.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, Final

from edgeward.cache.key import variant
from edgeward.cache.policy import Freshness, current_age
from edgeward.cache.store import Entry
from edgeward.filters.events import CACHE_SHARED, FilterEvents
from edgeward.http.message import RequestHead
from edgeward.ratelimit.redis_client import STORE_ERRORS

log = logging.getLogger("edgeward.cache")

# Background writes in flight per worker; a burst of misses beyond this writes fewer copies
# rather than queue without bound (the local tier has them either way).
MAX_WRITES: Final = 64
# Results, the `result` label of edgeward_cache_shared_total.
HIT: Final = "hit"
MISS: Final = "miss"
ERROR: Final = "error"            # Redis failed or was slower than `timeout`: a miss
STORED: Final = "stored"
WRITE_ERROR: Final = "write_error"
TOO_LARGE: Final = "too_large"    # over shared.max_entry_size: local only
DROPPED: Final = "dropped"        # MAX_WRITES in flight
_LEN: Final = struct.Struct(">I")

# KEYS: the bases set; ARGV: prefix, key, primary, base, blob, ttl ms, vary names, tags...
STORE: Final = """
local p = ARGV[1]
local ttl = tonumber(ARGV[6])
redis.call('SET', p .. ':e:' .. ARGV[2], ARGV[5], 'PX', ttl)
redis.call('SET', p .. ':v:' .. ARGV[3], ARGV[7], 'PX', ttl)
local function index(k, member)
  redis.call('SADD', k, member)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
index(p .. ':b:' .. ARGV[4], ARGV[2])
index(KEYS[1], ARGV[4])
for i = 8, #ARGV do index(p .. ':t:' .. ARGV[i], ARGV[2]) end
return 1
"""
# KEYS: the bases set; ARGV: prefix, kind (key, prefix, tag, flush), argument.
PURGE: Final = """
local p, kind, arg = ARGV[1], ARGV[2], ARGV[3]
local n = 0
local function drop(keys)
  for _, k in ipairs(keys) do n = n + redis.call('DEL', p .. ':e:' .. k) end
end
local function drop_base(b)
  drop(redis.call('SMEMBERS', p .. ':b:' .. b))
  redis.call('DEL', p .. ':b:' .. b)
  redis.call('SREM', KEYS[1], b)
end
if kind == 'key' then
  drop_base(arg)
elseif kind == 'prefix' or kind == 'flush' then
  for _, b in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if kind == 'flush' or string.sub(b, 1, #arg) == arg then drop_base(b) end
  end
elseif kind == 'tag' then
  drop(redis.call('SMEMBERS', p .. ':t:' .. arg))
  redis.call('DEL', p .. ':t:' .. arg)
end
return n
"""


def encode(entry: Entry, age: float, wall: float) -> bytes:
    head = json.dumps({
        "s": entry.status,
        "f": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in entry.fields],
        "l": entry.fresh.lifetime, "a": age, "w": wall,
        "swr": entry.fresh.swr, "sie": entry.fresh.sie,
        "r": entry.fresh.revalidate, "nc": entry.fresh.no_cache,
        "e": entry.etag, "lm": entry.last_modified, "t": list(entry.tags),
        "v": list(entry.vary), "k": entry.key, "p": entry.primary, "b": entry.base,
    }, separators=(",", ":")).encode()
    return _LEN.pack(len(head)) + head + entry.body


def decode(blob: bytes, now: float, wall: float) -> Entry:
    """The entry `blob` holds, as if received at `now` with the age it has by `wall`."""
    (size,) = _LEN.unpack_from(blob)
    h = json.loads(blob[4:4 + size])
    age = float(h["a"]) + max(wall - float(h["w"]), 0.0)
    fresh = Freshness(float(h["l"]), age, float(h["swr"]), float(h["sie"]), bool(h["r"]),
                      bool(h["nc"]))
    fields = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in h["f"]]
    return Entry(h["k"], h["p"], h["b"], int(h["s"]), fields, blob[4 + size:], fresh, now,
                 h["e"], h["lm"], tuple(h["t"]), tuple(h["v"]))


def ttl_of(entry: Entry, age: float) -> float:
    """Seconds the shared copy is worth keeping: what is left of its freshness and the
    longer of its stale windows (0 or less: not written)."""
    fresh = entry.fresh
    if fresh.no_cache:
        return 0.0
    return fresh.lifetime + max(fresh.swr, fresh.sie) - age


class SharedTier:
    """One worker's view of the shared tier (the I/O side: the cache filter calls it)."""

    def __init__(self, client: Any, events: FilterEvents, *, prefix: str, max_entry: int,
                 timeout: float, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.events = events
        self.prefix = prefix
        self.max_entry = max_entry
        self.timeout = timeout
        self.clock = clock
        self.wall = wall
        self.bases = prefix + ":bases"
        self._store = client.register_script(STORE)
        self._purge = client.register_script(PURGE)
        self._writes: set[asyncio.Task[None]] = set()

    # lookup -------------------------------------------------------------------------------
    async def lookup(self, primary: str, req: RequestHead, route: str) -> Entry | None:
        """The shared copy for `req`, or None (missing, or Redis failed or was slow)."""
        try:
            blob = await asyncio.wait_for(self._get(primary, req), self.timeout)
            entry = None if blob is None else decode(blob, self.clock(), self.wall())
        except (TimeoutError, *STORE_ERRORS, ValueError, KeyError) as exc:
            log.debug("cache shared lookup of %s: %r", primary, exc)
            self.events.count(CACHE_SHARED, route, ERROR)
            return None
        self.events.count(CACHE_SHARED, route, MISS if entry is None else HIT)
        return entry

    async def _get(self, primary: str, req: RequestHead) -> bytes | None:
        p = self.prefix
        names, blob = await self.client.mget([f"{p}:v:{primary}", f"{p}:e:{primary}"])
        if names is None:
            return None
        if not names:
            return blob  # type: ignore[no-any-return]
        vary = tuple(names.decode("latin-1").split(","))
        found = await self.client.get(f"{p}:e:{variant(primary, req, vary)}")
        return found  # type: ignore[no-any-return]

    # write --------------------------------------------------------------------------------
    def write(self, entry: Entry, route: str) -> None:
        """Copy a stored entry to Redis in the background (never waits)."""
        if len(entry.body) > self.max_entry:
            self.events.count(CACHE_SHARED, route, TOO_LARGE)
            return
        age = current_age(entry.fresh, entry.stored_at, self.clock())
        ttl = ttl_of(entry, age)
        if ttl < 0.001:
            return
        if len(self._writes) >= MAX_WRITES:
            self.events.count(CACHE_SHARED, route, DROPPED)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._write(entry, age, ttl, route))
        except RuntimeError:
            return
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, entry: Entry, age: float, ttl: float, route: str) -> None:
        blob = encode(entry, age, self.wall())
        try:
            await self._store(keys=[self.bases],
                              args=[self.prefix, entry.key, entry.primary, entry.base, blob,
                                    int(ttl * 1000), ",".join(entry.vary), *entry.tags])
        except STORE_ERRORS as exc:
            log.debug("cache shared write of %s: %r", entry.key, exc)
            self.events.count(CACHE_SHARED, route, WRITE_ERROR)
            return
        self.events.count(CACHE_SHARED, route, STORED)

    async def settled(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # purge --------------------------------------------------------------------------------
    async def purge(self, kind: str, arg: str) -> int:
        """Remove what a purge names from Redis; the entries removed. Raises on a Redis
        error (the caller reports it)."""
        found = await self._purge(keys=[self.bases], args=[self.prefix, kind, arg])
        return int(found)
