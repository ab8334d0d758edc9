"""One worker's view of every shadow change: one XREAD over the shards' change streams.

Devices connected to this worker (WebSocket sessions), delta streams (SSE) and long polls
subscribe by device id; the feed reads
each shard's change stream from where it last read (explicit ids, never `$` after the first
call, so nothing written between two reads is skipped) and hands each entry whose device is
subscribed to its subscribers. One blocking read serves any number of waiters: the cost per
waiting device is a dict entry, not a Redis connection (redis-py's pool holds 100).

Ordering against a subscriber's own first read: a subscriber first awaits `ready()` (the
feed has taken the streams' current ends), subscribes, then reads the shadow. A change stored
before that read is in the read; a change stored after it is delivered by the feed. Either may
be seen twice (a read and then the feed): subscribers drop versions they have seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, Protocol

from edgeward.devices.shadow import Shadow
from edgeward.devices.store import STORE_ERRORS, ShadowStore, as_text

log = logging.getLogger("edgeward.devices")

# Entries per stream per read, and the block per read (below the client's 2 s socket timeout).
BATCH: Final = 500
BLOCK_MS: Final = 1000
RETRY_DELAY: Final = 1.0


class Subscriber(Protocol):
    def on_change(self, name: str, version: int, event: bytes) -> None: ...


class _Waiter:
    """A wait for one shadow to pass a version (`ChangeFeed.wait_change`)."""

    __slots__ = ("name", "after", "future")

    def __init__(self, name: str, after: int, future: asyncio.Future[None]) -> None:
        self.name = name
        self.after = after
        self.future = future

    def on_change(self, name: str, version: int, event: bytes) -> None:
        if name == self.name and version > self.after and not self.future.done():
            self.future.set_result(None)


class ChangeFeed:
    def __init__(self, store: ShadowStore) -> None:
        self.store = store
        self.groups = store.read_groups(("changes", "sessions"))
        self.streams = [s for group in self.groups for s in group]
        # Called with (device, session, stream id) for each session announcement
        # (`ShadowStore.announce`): the device sessions replace an older connection.
        self.on_session: Callable[[str, str, str], None] | None = None
        self.subscribers: dict[str, list[Subscriber]] = {}
        self.errors = 0
        self._ids: dict[str, str] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """Returns once the feed reads from the streams' current ends (starting it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self._ready.wait()

    def subscribe(self, device: str, sub: Subscriber) -> None:
        self.subscribers.setdefault(device, []).append(sub)

    def unsubscribe(self, device: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(device)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self.subscribers[device]

    async def wait_change(self, device: str, name: str, after: int,
                          timeout: float) -> Shadow | None:
        """The shadow once its version is above `after`, or as it is after `timeout` (None
        if there is none). Raises StoreError when the shadow cannot be read."""
        await self.ready()
        waiter = _Waiter(name, after, asyncio.get_running_loop().create_future())
        self.subscribe(device, waiter)
        try:
            shadow, _ = await self.store.read(device, name)
            if shadow is not None and shadow.version > after:
                return shadow
            try:
                async with asyncio.timeout(timeout):
                    await waiter.future
            except TimeoutError:
                return shadow
            shadow, _ = await self.store.read(device, name)
            return shadow
        finally:
            self.unsubscribe(device, waiter)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while not self._ids:
            try:
                await self._ends()
            except STORE_ERRORS as exc:
                self._failed(exc)
                await asyncio.sleep(RETRY_DELAY)
        self._ready.set()
        async with asyncio.TaskGroup() as readers:
            for group in self.groups:
                readers.create_task(self._reader(group))

    async def _reader(self, streams: list[str]) -> None:
        while True:
            try:
                await self._read(streams)
            except STORE_ERRORS as exc:
                # The ids are kept: after Redis comes back, reading resumes where it stopped.
                self._failed(exc)
                await asyncio.sleep(RETRY_DELAY)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        log.warning("device change feed: %r; retrying in %.0fs", exc, RETRY_DELAY)

    async def _ends(self) -> None:
        client = self.store.client
        ids = {}
        for stream in self.streams:
            newest = await client.xrevrange(stream, count=1)
            ids[stream] = as_text(newest[0][0]) if newest else "0-0"
        self._ids = ids

    async def _read(self, streams: list[str]) -> None:
        got = await self.store.client.xread({s: self._ids[s] for s in streams},
                                            block=BLOCK_MS, count=BATCH)
        for stream, entries in got or []:
            for entry_id, fields in entries:
                self._ids[as_text(stream)] = entry = as_text(entry_id)
                self._dispatch(fields, entry)

    def _dispatch(self, fields: dict[bytes, bytes], entry: str) -> None:
        device = fields.get(b"device")
        if device is None:
            return
        session = fields.get(b"session")
        if session is not None:
            if self.on_session is not None:
                self.on_session(device.decode(), session.decode(), entry)
            return
        subs = self.subscribers.get(device.decode())
        if subs is None:
            return
        name, version = fields[b"shadow"].decode(), int(fields[b"version"])
        for sub in list(subs):
            try:
                sub.on_change(name, version, fields[b"event"])
            except Exception:  # noqa: BLE001 - one subscriber's bug must not stop the feed
                log.exception("device change feed: a subscriber failed")


