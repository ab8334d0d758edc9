"""Deltas as server-sent events: `GET .../devices/{id}/shadow[/{name}]/delta` with
`Accept: text/event-stream` (docs/devices.md).

Each change of the shadow is one event `delta` whose id is the shadow's version and whose data
is `{version, clock, delta}`, as the long poll answers. A client resumes with `Last-Event-ID`
(what EventSource sends on reconnecting) or `?version=N`: the first event is the shadow as it is
now if its version is past that. Changes that happen faster than the client reads coalesce:
the stream reads the current shadow after each wait, so a device is never more than one event
behind and nothing queues per device. A comment line goes out after `heartbeat` seconds
without an event, so idle proxies keep the stream and a dead client is noticed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from edgeward.devices.feed import ChangeFeed
from edgeward.devices.shadow import Shadow
from edgeward.devices.store import StoreError
from edgeward.filters.api import Reply, ReplyOutput, Request

EVENT_STREAM: Final = "text/event-stream"
_HEADERS: Final = (("content-type", "text/event-stream"), ("cache-control", "no-store"),
                   ("x-accel-buffering", "no"))
HEARTBEAT: Final = b": heartbeat\n\n"
WAIT_SLICE: Final = 1.0


def wants_events(req: Request) -> bool:
    accept = req.headers.get("accept")
    return accept is not None and EVENT_STREAM in accept.lower()


def resume_from(req: Request) -> int:
    """The version the client has seen: Last-Event-ID, else ?version=, else 0."""
    for raw in (req.headers.get("last-event-id"), req.query("version")):
        if raw is not None and raw.strip().isdigit():
            return int(raw.strip())
    return 0


def event(shadow: Shadow) -> bytes:
    doc: dict[str, Any] = {"version": shadow.version, "clock": shadow.clock,
                           "delta": shadow.state().get("delta", {})}
    data = json.dumps(doc, separators=(",", ":"))
    return f"id: {shadow.version}\nevent: delta\ndata: {data}\n\n".encode()


class DeltaStreams:
    """The delta streams of one route's API in this worker, bounded per device."""

    def __init__(self, feed: ChangeFeed, heartbeat: float, max_streams: int) -> None:
        self.feed = feed
        self.heartbeat = heartbeat
        self.max_streams = max_streams
        self.open: dict[str, int] = {}  # device -> streams open now

    def reply(self, req: Request, device: str, name: str) -> Reply:
        if self.open.get(device, 0) >= self.max_streams:
            return Reply.error(429, "device_streams_exceeded",
                               f"device {device!r} has {self.max_streams} delta streams open")
        after = resume_from(req)
        reply = Reply(200, b"", _HEADERS)

        async def run(out: ReplyOutput) -> None:
            # Counted once running: a task cancelled before its first step runs no `finally`.
            count = self.open[device] = self.open.get(device, 0) + 1
            try:
                if count > self.max_streams:  # another stream started since the check
                    out.write(b'event: error\ndata: {"code":"device_streams_exceeded"}\n\n')
                    return
                await self._events(out, device, name, after)
            finally:
                left = self.open.get(device, 1) - 1
                if left > 0:
                    self.open[device] = left
                else:
                    self.open.pop(device, None)

        reply.stream = run
        return reply

    async def _events(self, out: ReplyOutput, device: str, name: str, after: int) -> None:
        out.write(b"retry: 1000\n\n")
        # `closed`, not only cancellation: redis-py's read under asyncio.timeout can swallow a
        # cancel that lands during an XREAD BLOCK (seen with redis-py 8.2 on Python 3.11).
        while not out.closed:
            try:
                shadow = await self._wait(out, device, name, after)
            except StoreError as exc:
                detail = json.dumps({"code": "device_store_unavailable", "detail": str(exc)})
                out.write(f"event: error\ndata: {detail}\n\n".encode())
                return  # the client reconnects with Last-Event-ID
            if shadow is not None and shadow.version > after:
                after = shadow.version
                out.write(event(shadow))
            elif not out.closed:
                out.write(HEARTBEAT)
            await out.drain()

    async def _wait(self, out: ReplyOutput, device: str, name: str,
                    after: int) -> Shadow | None:
        """The shadow once past `after`, or None after `heartbeat` (or when `out` closes:
        waits are one-second slices, so a draining gateway ends its streams within one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.heartbeat
        while True:
            left = deadline - loop.time()
            shadow = await self.feed.wait_change(device, name, after, min(left, WAIT_SLICE))
            if shadow is not None and shadow.version > after:
                return shadow
            if out.closed or loop.time() >= deadline:
                return None
