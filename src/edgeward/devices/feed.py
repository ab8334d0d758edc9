"""One worker's view of every shadow change: one XREAD over the shards' change streams.

Devices connected to this worker (WebSocket sessions) subscribe by device id; the feed reads
each shard's change stream from where it last read (explicit ids, never `$` after the first
call, so nothing written between two reads is skipped) and hands each entry whose device is
subscribed to its subscriber. One blocking read serves any number of devices: the cost per
connected device is one dict entry, not a Redis connection.

Ordering against a subscriber's own first read: a subscriber first awaits `ready()` (the
feed has taken the streams' current ends), subscribes, then reads the shadow. A change stored
before that read is in the read; a change stored after it is delivered by the feed. Either may
be seen twice (a read and then the feed): subscribers drop versions they have seen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from edgeward.devices.store import STORE_ERRORS, ShadowStore

log = logging.getLogger("edgeward.devices")

# Entries per stream per read, and the block per read (below the client's 2 s socket timeout).
BATCH: Final = 500
BLOCK_MS: Final = 1000
RETRY_DELAY: Final = 1.0


class Subscriber(Protocol):
    def on_change(self, name: str, version: int, event: bytes) -> None: ...


class ChangeFeed:
    def __init__(self, store: ShadowStore) -> None:
        self.store = store
        prefix, shards = store.config.key_prefix, store.config.shards
        self.streams = [f"{prefix}:{{{s}}}:changes" for s in range(shards)]
        self.subscribers: dict[str, Subscriber] = {}
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
        self.subscribers[device] = sub

    def unsubscribe(self, device: str, sub: Subscriber) -> None:
        if self.subscribers.get(device) is sub:
            del self.subscribers[device]

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                if not self._ids:
                    await self._ends()
                    self._ready.set()
                await self._read()
            except asyncio.CancelledError:
                raise
            except STORE_ERRORS as exc:
                # The ids are kept: after Redis comes back, reading resumes where it stopped.
                self.errors += 1
                log.warning("device change feed: %r; retrying in %.0fs", exc, RETRY_DELAY)
                await asyncio.sleep(RETRY_DELAY)

    async def _ends(self) -> None:
        client = self.store.client
        for stream in self.streams:
            newest = await client.xrevrange(stream, count=1)
            self._ids[stream] = _text(newest[0][0]) if newest else "0-0"

    async def _read(self) -> None:
        got = await self.store.client.xread(self._ids, block=BLOCK_MS, count=BATCH)
        for stream, entries in got or []:
            for entry_id, fields in entries:
                self._ids[_text(stream)] = _text(entry_id)
                self._dispatch(fields)

    def _dispatch(self, fields: dict[bytes, bytes]) -> None:
        device = fields.get(b"device")
        if device is None:
            return
        sub = self.subscribers.get(device.decode())
        if sub is None:
            return
        try:
            sub.on_change(fields[b"shadow"].decode(), int(fields[b"version"]), fields[b"event"])
        except Exception:  # noqa: BLE001 - one session's bug must not stop every device's feed
            log.exception("device change feed: a subscriber failed")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
