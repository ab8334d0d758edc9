"""Shadows and telemetry in Redis: compare-and-set in Lua, every change on a stream per shard.

The model (`devices.shadow`) decides; Redis only makes each decision atomic. An update reads
the shadow (HMGET), applies the update in Python, then runs CAS_SCRIPT, which writes the new
document only if the stored version is still the one read, and appends the change to the
shard's stream in the same script (so no change is stored without its stream entry, or the
reverse). A lost race reads again, up to `cas_attempts` rounds.

Keys of one device share a Redis Cluster hash tag, its shard: `PREFIX:{S}:shadow:DEVICE:NAME`
(a hash: v = version, doc = the stored shadow, id = its last stream entry), the change stream
`PREFIX:{S}:changes`, the telemetry stream `PREFIX:{S}:telemetry` and idempotency keys
`PREFIX:{S}:seen:DEVICE:ID`; S = crc32(device) % shards. Both gateways and applications read
the streams (XREAD, or XREADGROUP with their own consumer groups).

The client is the limiter's (`ratelimit.redis_client.connect`, one per worker through the
registry): redis-py speaks EVALSHA, XADD, XREAD and XREADGROUP already. Waiting for a change
(long polls, delta streams, sessions) is the worker's change feed (feed.py), not the store.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from edgeward.devices.config import DevicesConfig
from edgeward.devices.shadow import Result, Shadow, Update, apply
from edgeward.ratelimit.redis_store import LuaScript

# Short store calls (reads, compare-and-sets, telemetry appends) in flight at once per worker;
# more wait for a slot within the call's deadline instead of failing. redis-py's asyncio pool
# holds at most 100 connections and refuses the 101st at once (MaxConnectionsError): this
# leaves room for the change feed (feed.py, one blocking read per worker) and global rate
# limits, which share the client.
MAX_CALLS: Final = 64
# Between compare-and-set rounds lost to another writer: a random pause below 1 ms, 2 ms,
# 4 ms ... (full jitter), at most 32 ms.
CAS_BACKOFF: Final = 0.001
CAS_BACKOFF_MAX: Final = 0.032
# Session announcements kept per shard: a reader only needs the ones since its last read.
SESSIONS_MAXLEN: Final = 1000
STORE_ERRORS: Final = (RedisError, OSError, TimeoutError)

T = TypeVar("T")

# KEYS: shadow hash, change stream. ARGV: expected version, new version, document, maxlen,
# device, shadow name, event (JSON). Returns {1, stream id} or {0, stored version}.
CAS_SCRIPT = LuaScript("""
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, tostring(v)} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
                      'device', ARGV[5], 'shadow', ARGV[6], 'version', ARGV[2],
                      'event', ARGV[7])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3], 'id', id)
return {1, id}
""")

# KEYS: idempotency key, telemetry stream. ARGV: ttl_ms, maxlen, device, message id, payload.
# Returns {1, stream id} when stored, {0, the first copy's stream id} for a resend.
TELEMETRY_SCRIPT = LuaScript("""
local prior = redis.call('GET', KEYS[1])
if prior then return {0, prior} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                      'device', ARGV[3], 'id', ARGV[4], 'payload', ARGV[5])
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {1, id}
""")


class StoreError(Exception):
    """Redis failed, timed out, or the CAS lost every round (HTTP 503)."""


class TooLarge(Exception):
    """The shadow's state would exceed max_document_bytes (HTTP 413)."""


def as_text(value: Any) -> str:
    """A Redis reply (bytes, or already text) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class ShadowStore:
    """One worker's access to shadows and telemetry in Redis (shared by HTTP and MQTT)."""

    def __init__(self, client: Any, config: DevicesConfig) -> None:
        self.client = client
        self.config = config
        # Counts exported as metrics (edgeward_device_*; docs/devices.md).
        self.conflicts = 0        # CAS rounds lost to another writer
        self.outcomes = {"applied": 0, "duplicate": 0, "stale": 0, "conflict": 0}
        self.telemetry = {"stored": 0, "duplicate": 0}
        self.calls = asyncio.Semaphore(MAX_CALLS)

    # -- keys ------------------------------------------------------------------------------

    def shard(self, device: str) -> int:
        return zlib.crc32(device.encode()) % self.config.shards

    def _base(self, device: str) -> str:
        return f"{self.config.key_prefix}:{{{self.shard(device)}}}"

    def shadow_key(self, device: str, name: str) -> str:
        return f"{self._base(device)}:shadow:{device}:{name}"

    def changes_key(self, device: str) -> str:
        return f"{self._base(device)}:changes"

    def telemetry_key(self, device: str) -> str:
        return f"{self._base(device)}:telemetry"

    def change_streams(self) -> list[str]:
        """Every shard's change stream."""
        return [group[0] for group in self._shard_streams(("changes",))]

    def _shard_streams(self, kinds: tuple[str, ...]) -> list[list[str]]:
        prefix = self.config.key_prefix
        return [[f"{prefix}:{{{s}}}:{kind}" for kind in kinds]
                for s in range(self.config.shards)]

    def read_groups(self, kinds: tuple[str, ...] = ("changes",)) -> list[list[str]]:
        """The shards' streams of `kinds` as one XREAD may take them: all together, or shard
        by shard on a Redis Cluster (it refuses a command over keys in several slots, and
        each shard's hash tag is its own slot)."""
        per_shard = self._shard_streams(kinds)
        if isinstance(self.client, RedisCluster):
            return per_shard
        return [[s for group in per_shard for s in group]]

    async def announce(self, device: str, session: str) -> str:
        """Tell every gateway's change feed that `session` of `device` opened: the stream
        id of the announcement (ids order announcements of one device)."""
        entry = await self.call(lambda: self.client.xadd(
            f"{self._base(device)}:sessions", {"device": device, "session": session},
            maxlen=SESSIONS_MAXLEN, approximate=True))
        return as_text(entry)

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """One short store call, `make()`: it waits for one of MAX_CALLS slots, the wait
        counting in the `timeout` deadline; a Redis failure or timeout is a StoreError."""
        try:
            async with asyncio.timeout(self.config.timeout), self.calls:
                return await make()
        except STORE_ERRORS as exc:
            raise StoreError(f"redis: {exc!r}") from None

    # -- shadows ---------------------------------------------------------------------------

    async def read(self, device: str, name: str) -> tuple[Shadow | None, str]:
        """The stored shadow (None if none) and the change stream id to wait after."""
        async def both() -> tuple[Any, Any]:
            doc, last = await self.client.hmget(self.shadow_key(device, name), "doc", "id")
            if last is None:
                newest = await self.client.xrevrange(self.changes_key(device), count=1)
                last = newest[0][0] if newest else b"0-0"
            return doc, last

        doc, last = await self.call(both)
        return (Shadow.loads(doc) if doc is not None else None), as_text(last)

    async def update(self, device: str, name: str, update: Update, now: float,
                     kind: str = "update") -> Result:
        for attempt in range(self.config.cas_attempts):
            stored, _ = await self.read(device, name)
            current = stored if stored is not None else Shadow()
            result = apply(current, update, now)
            if result.outcome != "applied":
                self.outcomes[result.outcome] += 1
                return result
            new = result.shadow
            state = json.dumps(new.state(), separators=(",", ":"))
            if len(state) > self.config.max_document_bytes:
                raise TooLarge(f"the shadow's state would be {len(state)} bytes, above "
                               f"max_document_bytes {self.config.max_document_bytes}")
            event = json.dumps({
                "kind": kind, "version": new.version, "writer": update.writer,
                "timestamp": now, "state": {"desired": update.desired,
                                            "reported": update.reported},
                "delta": new.state().get("delta") if result.desired_changed else None,
            }, separators=(",", ":"))
            if await self._cas(device, name, current.version, new, event):
                self.outcomes["applied"] += 1
                return result
            self.conflicts += 1
            # Full jitter (AWS's backoff advice): writers that lost together do not race
            # again in lockstep; 1, 2, 4 ... ms ceilings, at most CAS_BACKOFF_MAX.
            await asyncio.sleep(random.uniform(0, min(CAS_BACKOFF_MAX,
                                                      CAS_BACKOFF * 2 ** attempt)))
        raise StoreError(f"the shadow changed under {self.config.cas_attempts} attempts")

    async def _cas(self, device: str, name: str, expected: int, new: Shadow,
                   event: str) -> bool:
        keys = (self.shadow_key(device, name), self.changes_key(device))
        args = (expected, new.version, new.dumps(), self.config.stream_maxlen, device, name,
                event)
        done, _ = await self.call(lambda: CAS_SCRIPT.call(self.client, keys, args))
        return int(done) == 1

    # -- telemetry -------------------------------------------------------------------------

    async def ingest(self, device: str, message_id: str, payload: bytes) -> tuple[bool, str]:
        """Append a telemetry message once per (device, message_id): (stored now, entry id)."""
        keys = (f"{self._base(device)}:seen:{device}:{message_id}", self.telemetry_key(device))
        args = (int(self.config.dedup_ttl * 1000), self.config.telemetry_maxlen, device,
                message_id, payload)
        stored, entry = await self.call(lambda: TELEMETRY_SCRIPT.call(self.client, keys, args))
        self.telemetry["stored" if int(stored) else "duplicate"] += 1
        return bool(int(stored)), as_text(entry)
