"""A server-sent events reader over a raw HTTP/1.1 connection (chunked), for the device tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

TIMEOUT = 10.0


class EventStream:
    """GET path with Accept: text/event-stream; `next()` returns the next event or comment."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""      # a non-stream answer's body
        self.pending = b""   # stream bytes not yet split into events
        self.ended = False

    @classmethod
    async def open(cls, port: int, path: str,
                   headers: dict[str, str] | None = None) -> EventStream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fields = {"host": "devices", "accept": "text/event-stream", **(headers or {})}
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        writer.write(head.encode() + b"\r\n")
        stream = cls(reader, writer)
        async with asyncio.timeout(TIMEOUT):
            top = await reader.readuntil(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        stream.status = int(lines[0].split()[1])
        stream.headers = {k.strip().lower(): v.strip()
                          for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
        if "content-length" in stream.headers:
            stream.body = await reader.readexactly(int(stream.headers["content-length"]))
        return stream

    def json(self) -> Any:
        return json.loads(self.body)

    async def _chunk(self) -> bytes:
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        data = await self.reader.readexactly(size + 2)
        if size == 0:
            self.ended = True
        return data[:-2]

    async def next(self, timeout: float = TIMEOUT) -> dict[str, str]:
        """The next block: {"id", "event", "data"} for an event, {"comment": ...} else;
        {} when the stream ended."""
        async with asyncio.timeout(timeout):
            while b"\n\n" not in self.pending:
                if self.ended:
                    return {}
                self.pending += await self._chunk()
        block, _, self.pending = self.pending.partition(b"\n\n")
        out: dict[str, str] = {}
        for line in block.decode().split("\n"):
            key, _, value = line.partition(":")
            out[key or "comment"] = value.removeprefix(" ")
        return out

    async def next_event(self, timeout: float = TIMEOUT) -> dict[str, str]:
        """The next block with an `event` (skipping heartbeats and `retry`)."""
        while True:
            block = await self.next(timeout)
            if not block or "event" in block:
                return block

    def close(self) -> None:
        self.writer.close()
