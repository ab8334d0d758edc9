"""A local reply whose body a filter streams (`Reply.stream`): the exchange's side of it.

The exchange sends the head (unknown length), then runs the reply's `stream(out)` as a task
held like a filter's wait (so the client going away cancels it). `out.write` passes each part
through the response body filters the request passed and on to the client; `out.drain()`
waits while the client's connection is paused (its socket buffer full), so a slow reader holds
the producer instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from edgeward.filters.api import ReplyOutput
from edgeward.proxy.states import DONE

if TYPE_CHECKING:
    from edgeward.proxy.exchange import Exchange


class StreamedReply(ReplyOutput):
    __slots__ = ("ex", "paused")

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.paused: asyncio.Future[None] | None = None

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
