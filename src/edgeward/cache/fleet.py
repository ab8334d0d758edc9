"""Fleet-wide purges over a Redis Stream: every purge is appended (XADD MAXLEN ~ window); every
gateway worker reads the stream through its own consumer group, applies each purge to its
local tier and acknowledges it.

- Order and no loss: a group remembers what it was given (last-delivered id) and what was
  not acknowledged (its pending list). A worker that restarts under the same `node` name
  reads its pending entries first (id 0), then what came after; one that lost its connection
  resumes the same way, from Redis' memory, not its own.
- Bounded: the stream keeps about `window` entries (MAXLEN ~, trimmed in whole nodes). A
  worker whose last-delivered id is older than the newest entry Redis trimmed
  (XINFO STREAM max-deleted-entry-id, Redis >= 7) missed purges it can never read: it
  flushes its whole local tier instead of serving what they removed. It checks before every
  read, so a worker that was stopped (SIGSTOP, a long pause) finds out when it wakes.
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

Apply = Callable[[str, str], None]     # (kind, argument) from the stream
Flush = Callable[[], None]             # the window was missed


def _id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


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
        self._task: asyncio.Task[None] | None = None

    # publishing -----------------------------------------------------------------------------
    async def publish(self, purges: list[tuple[str, str]], node: str) -> str:
        """Append one entry carrying `purges`; its stream id. Raises on a Redis error."""
        fields = {"p": json.dumps(purges), "n": node}
        found = await self.client.xadd(self.stream, fields, maxlen=self.window,
                                       approximate=True)
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
                    await self._check_window()
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
                self.applied_id = entry_id.decode() if isinstance(entry_id, bytes) \
                    else str(entry_id)
            if ids:
                await self.client.xack(self.stream, self.group, *ids)

    def _apply_entry(self, fields: dict[Any, Any]) -> None:
        raw: Any = fields.get(b"p", fields.get("p"))
        try:
            purges = json.loads(raw)
        except (TypeError, ValueError):
            log.error("cache purge stream %s: unreadable entry %r", self.stream, fields)
            return
        for item in purges:
            if isinstance(item, list) and len(item) == 2:
                self.apply(str(item[0]), str(item[1]))

    async def _check_window(self) -> None:
        """Flush when purges this group never saw were trimmed from the stream."""
        info = await self.client.xinfo_stream(self.stream)
        deleted = info.get("max-deleted-entry-id", info.get(b"max-deleted-entry-id"))
        if deleted is None or _id(deleted) == (0, 0):
            return
        groups = await self.client.xinfo_groups(self.stream)
        for g in groups:
            name = g.get("name", g.get(b"name"))
            name = name.decode() if isinstance(name, bytes) else name
            if name != self.group:
                continue
            delivered = g.get("last-delivered-id", g.get(b"last-delivered-id"))
            if _id(delivered) < _id(deleted):
                log.warning("cache purge stream %s: this worker fell behind the window of "
                            "%d entries; flushing its cache", self.stream, self.window)
                self.flushes += 1
                self.flush()
                # Everything up to the trimmed entries is now covered by the flush.
                await self.client.xgroup_setid(self.stream, self.group, id=deleted)
            return
