"""Fleet-wide purges over a Redis Stream: every purge is appended (XADD MAXLEN ~ window); every
gateway worker reads the stream through its own consumer group, applies each purge to its
local tier and acknowledges it.

- Order and no loss: a group remembers what it was given (last-delivered id) and what was
  not acknowledged (its pending list). A worker that restarts under the same `node` name
  reads its pending entries first (id 0), then what came after; one that lost its connection
  resumes the same way, from Redis' memory, not its own.
- Bounded: the stream keeps about `window` entries (XADD MAXLEN ~, trimmed in whole nodes).
  Each entry carries a sequence number (`s`, from INCR on `<stream>:seq` in the same script
  as the XADD, so the numbers follow the stream's order). A worker that reads a number more
  than one past the last it applied missed purges that were trimmed before it read them
  (it was stopped, or cut off from Redis, for more than the window): it flushes its whole
  local tier rather than serve what they removed. Trimming keeps at least `window` newer
  entries, which the worker has not read, so it finds out with its next read. (Redis'
  own bookkeeping cannot tell: XINFO's max-deleted-entry-id ignores trimming, and a group's
  lag is estimated as if trimmed entries had been read.) On Redis Cluster, give the stream
  a hash tag (`{edgeward}:cache:purge`) so both keys live in one slot.
- Latency: XREADGROUP BLOCK returns as soon as an entry is appended, so a purge reaches the
  other workers one round trip after its XADD (benchmarks/cache_purge_latency.py).

The client is the gateway's Redis client (edgeward.ratelimit.redis_store.connect): redis-py's
asyncio client does streams; a blocked read holds one pooled connection, other commands
take others. Its socket timeout bounds every call, so reads block for less (READ_BLOCK).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import RedisError, ResponseError

log = logging.getLogger("edgeward.cache")

# XREADGROUP BLOCK, below the client's socket timeout (ratelimit.redis_store.PREPARE_TIMEOUT).
READ_BLOCK_MS: Final = 1000
READ_COUNT: Final = 100
# After a Redis error, wait this long before reading again (the breaker-free retry of a
# background reader; purges keep being applied locally meanwhile).
RETRY_AFTER: Final = 0.5
CONSUMER: Final = "gateway"  # one consumer per group: the group is the worker
_ERRORS: Final = (RedisError, OSError, TimeoutError)
# KEYS: stream, sequence; ARGV: window, purges (JSON), node.
PUBLISH: Final = """
local seq = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                  'p', ARGV[2], 'n', ARGV[3], 's', seq)
"""

Apply = Callable[[str, str], None]     # (kind, argument) from the stream
Flush = Callable[[], None]             # the window was missed


class Fleet:
    """One worker's publisher and reader of the purge stream."""

    def __init__(self, client: Any, *, stream: str, group: str, window: int,
                 apply: Apply, flush: Flush) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.window = window
        self.apply = apply
        self.flush = flush
        self.applied_id = "0-0"    # the last entry applied here
        self.flushes = 0           # times the window was missed
        self.connected = False
        self.seq: int | None = None  # the sequence number of the last entry applied
        self._publish = client.register_script(PUBLISH)
        self._task: asyncio.Task[None] | None = None

    # publishing -----------------------------------------------------------------------------
    async def publish(self, purges: list[tuple[str, str]], node: str) -> str:
        """Append one entry carrying `purges`; its stream id. Raises on a Redis error."""
        found = await self._publish(keys=[self.stream, self.stream + ":seq"],
                                    args=[self.window, json.dumps(purges), node])
        return found.decode() if isinstance(found, bytes) else str(found)

    # reading -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._join()
                await self._read("0")          # what this group was given and never acked
                while True:
                    await self._read(">")
            except asyncio.CancelledError:
                raise
            except _ERRORS as exc:
                if self.connected:
                    log.warning("cache purge stream %s: %s; reading again", self.stream, exc)
                self.connected = False
                await asyncio.sleep(RETRY_AFTER)
            except Exception:
                log.exception("cache purge stream %s", self.stream)
                await asyncio.sleep(RETRY_AFTER)

    async def _join(self) -> None:
        """Create the group at the stream's end (a new worker's tier is empty: nothing to
        catch up on); an existing group keeps its position."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        found = await self.client.get(self.stream + ":seq")
        current = int(found) if found is not None else 0
        if self.seq is None:  # this process' first read: its tier is empty, nothing missed
            self.seq = current
        elif current < self.seq:  # Redis lost the stream (restarted without persistence)
            log.warning("cache purge stream %s: Redis lost the stream; flushing", self.stream)
            self.flushes += 1
            self.flush()
            self.seq = current
        self.connected = True

    async def _read(self, start: str) -> None:
        got = await self.client.xreadgroup(self.group, CONSUMER, {self.stream: start},
                                           count=READ_COUNT,
                                           block=READ_BLOCK_MS if start == ">" else None)
        for _, entries in got or ():
            ids = []
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed away comes back empty
                    self._apply_entry(fields)
                ids.append(entry_id)
            if ids:
                await self.client.xack(self.stream, self.group, *ids)
                last = ids[-1]
                # Shown once acknowledged: a restart resumes after it.
                self.applied_id = last.decode() if isinstance(last, bytes) else str(last)

    def _apply_entry(self, fields: dict[Any, Any]) -> None:
        self._check_sequence(fields.get(b"s", fields.get("s")))
        raw: Any = fields.get(b"p", fields.get("p"))
        try:
            purges = json.loads(raw)
        except (TypeError, ValueError):
            log.error("cache purge stream %s: unreadable entry %r", self.stream, fields)
            return
        for item in purges:
            if isinstance(item, list) and len(item) == 2:
                self.apply(str(item[0]), str(item[1]))

    def _check_sequence(self, raw: Any) -> None:
        """Flush when the entry's sequence number skips some: those were trimmed unread."""
        try:
            seq = int(raw)
        except (TypeError, ValueError):
            return
        last = self.seq
        if last is not None and seq > last + 1:
            log.warning("cache purge stream %s: %d purges were trimmed before this worker "
                        "read them (window %d); flushing its cache", self.stream,
                        seq - last - 1, self.window)
            self.flushes += 1
            self.flush()
        if last is None or seq > last:
            self.seq = seq
