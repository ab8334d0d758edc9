"""A local reply whose body a filter streams (`Reply.stream`): the exchange's side of it.

The exchange sends the head (unknown length), then runs the reply's `stream(out)` as a task
held like a filter's wait (so the client going away cancels it). `out.write` passes each part
through the response body filters the request passed and on to the client; `out.drain()`
waits while the client's connection is paused (its socket buffer full), so a slow reader holds
the producer instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from edgeward.filters.api import Reply, ReplyOutput
from edgeward.http.stream import ServerStream
from edgeward.proxy.chain import Chain
from edgeward.proxy.states import DONE


class Owner(Protocol):
    """What a streamed reply uses of its exchange."""

    state: int
    chain: Chain
    down: ServerStream
    bytes_out: int
    held: asyncio.Future[Any] | None
    error_code: str | None

    def _response_body(self, data: bytes, end: bool) -> bytes: ...

    def _reset(self) -> None: ...

    def _close(self, notify: bool) -> None: ...


class StreamedReply(ReplyOutput):
    __slots__ = ("ex", "paused")

    def __init__(self, ex: Owner) -> None:
        self.ex = ex
        self.paused: asyncio.Future[None] | None = None

    @staticmethod
    def run(ex: Owner, reply: Reply) -> StreamedReply:
        """Run `reply.stream` (the head is sent) as a task held like a filter's wait."""
        assert reply.stream is not None
        out = StreamedReply(ex)
        task = asyncio.ensure_future(reply.stream(out))
        ex.held = task
        task.add_done_callback(out.finished)
        return out

    def write(self, data: bytes) -> None:
        ex = self.ex
        if ex.state == DONE or not data:
            return
        if ex.chain.response_body:
            data = ex._response_body(data, False)
            if ex.state == DONE or not data:
                return
        ex.bytes_out += len(data)
        ex.down.send_data(data)

    @property
    def closed(self) -> bool:
        return self.ex.state == DONE or self.ex.down.draining()

    async def drain(self) -> None:
        while self.paused is not None and self.ex.state != DONE:
            await asyncio.shield(self.paused)

    def pause(self) -> None:
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def finished(self, task: asyncio.Future[Any]) -> None:
        """The stream's task ended: end the response, or reset it if the task failed."""
        ex = self.ex
        self.resume()
        if ex.state == DONE or task.cancelled():
            return
        ex.held = None
        if task.exception() is not None:
            ex.error_code = ex.error_code or "filter_error"
            ex._reset()
            return
        if ex.chain.response_body:
            tail = ex._response_body(b"", True)
            if ex.state == DONE:
                return
            if tail:
                ex.down.send_data(tail)
        ex.down.send_end(None)
        ex._close(notify=True)
