"""The stream interface between codecs and the exchange, in both directions and on both sides.

One request and its response travel as a *stream*: a head, body data, optional trailers and an
end, or a reset. HTTP/1.1 carries one stream at a time per connection, HTTP/2 many; WebSocket
tunnels ride on one. The exchange sees only these four interfaces, so a codec can be swapped
without it noticing:

    client ─▶ server codec ─StreamHandler─▶ exchange ─ClientStream─▶ client codec ─▶ upstream
    client ◀─ server codec ◀─ServerStream── exchange ◀ResponseHandler─ client codec ◀─ upstream

They are base classes rather than protocols so that the compiled build calls them through a
vtable (a protocol-typed call is a dynamic attribute lookup); every method here is overridden.
Flow control is per stream: `pause_reading(reason)` stops the flow of request body into the
exchange for one reason (a bit) until `resume_reading(reason)`; deadlines are per stream too.
"""

from __future__ import annotations

import asyncio
from typing import Final

from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.tunnel import TunnelSettings, TunnelStats
from edgeward.http.ws_endpoint import WebSocketHandler

Trailers = list[tuple[bytes, bytes]] | None

# Reasons an exchange stops its request body from flowing (a bit each; 4 and 8 are the
# HTTP/1.1 codec's own).
PAUSE_UPSTREAM_FULL: Final = 1   # the upstream's write buffer is above its high-water mark
PAUSE_PENDING_BODY: Final = 2    # body bytes waiting for an upstream connection exceed a bound
PAUSE_HELD_BODY: Final = 16      # body bytes of a request still waiting its turn exceed a bound


class ServerStream:
    """What an exchange may do to the client side of its stream (implemented by codecs)."""

    loop: asyncio.AbstractEventLoop

    def send_head(self, resp: ResponseHead, request: RequestHead) -> None:
        """Start the response (for `request`: it decides HEAD, version, keep-alive)."""
        raise NotImplementedError

    def send_data(self, data: bytes) -> None:
        raise NotImplementedError

    def send_end(self, trailers: Trailers) -> None:
        raise NotImplementedError

    def send_continue(self) -> None:
        """100 Continue, to a client that waits for it before sending its body."""
        raise NotImplementedError

    def reset(self) -> None:
        """The response cannot be completed: end the stream abruptly (HTTP/1.1: abort)."""
        raise NotImplementedError

    def pause_reading(self, reason: int) -> None:
        raise NotImplementedError

    def resume_reading(self, reason: int) -> None:
        raise NotImplementedError

    def draining(self) -> bool:
        """The gateway is draining: a response that streams for as long as the client
        stays (server-sent events) should end now, so the client reconnects elsewhere."""
        return False

    def set_deadline(self, when: float) -> None:
        """Call the handler's `on_deadline` at `when` (loop time); math.inf for none."""
        raise NotImplementedError

    def done(self, handler: StreamHandler, now: float) -> None:
        """The exchange is finished (response sent or stream reset) at `now` (monotonic)."""
        raise NotImplementedError

    def upgrade(self, resp: ResponseHead, request: RequestHead, upstream: asyncio.Transport,
                upstream_early: bytes, settings: TunnelSettings, stats: TunnelStats) -> bool:
        """Answer `request` with the upstream's 101 `resp` and make the client's connection
        and `upstream` (with what it sent after its 101) one tunnel. False when the client
        side cannot switch (gone, draining, more requests behind it): nothing was sent."""
        raise NotImplementedError

    def accept_websocket(self, resp: ResponseHead, request: RequestHead,
                         handler: WebSocketHandler, settings: TunnelSettings,
                         stats: TunnelStats) -> bool:
        """Answer the handshake `request` with the 101 `resp` and end the WebSocket
        connection in the gateway, `handler` talking to the client (ws_endpoint). False when
        the client side cannot switch (HTTP/2, gone, draining, more requests behind it):
        nothing was sent."""
        raise NotImplementedError


class StreamHandler:
    """What a server codec tells the exchange of its stream (implemented by the exchange)."""

    def start(self) -> None:
        raise NotImplementedError

    def on_request_data(self, data: bytes) -> None:
        raise NotImplementedError

    def on_request_end(self, trailers: Trailers) -> None:
        raise NotImplementedError

    def on_request_error(self, code: str, message: str | None) -> None:
        """The rest of the request cannot be read (malformed body framing)."""
        raise NotImplementedError

    def on_deadline(self, now: float) -> None:
        raise NotImplementedError

    def on_downstream_paused(self) -> None:
        raise NotImplementedError

    def on_downstream_resumed(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """The client went away."""
        raise NotImplementedError


class HandlerFactory:
    """Makes the handler (an exchange) for each request a server codec reads."""

    def create(self, stream: ServerStream, head: RequestHead) -> StreamHandler:
        raise NotImplementedError


class ClientStream:
    """One request to an upstream (implemented by client codecs)."""

    reused: bool  # the connection carried an earlier request (the keep-alive race applies)

    def send_head(self, head: RequestHead, handler: ResponseHandler) -> None:
        raise NotImplementedError

    def send_data(self, data: bytes) -> None:
        raise NotImplementedError

    def send_end(self, trailers: Trailers) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def release(self, reusable: bool) -> None:
        """The exchange is done with the stream: the connection may serve another."""
        raise NotImplementedError

    def detach(self) -> tuple[asyncio.Transport, bytes] | None:
        """After a 101: the connection leaves its pool for good; returns its transport and
        the bytes read after the 101 head (None when it is already closed)."""
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class UpstreamPool:
    """The connections to one endpoint (HTTP/1.1: h1/client.py; HTTP/2: h2/pool.py): `take`
    a stream on a connection that has room, else `connect` for one. Bookkeeping is
    synchronous and I/O-free; only `connect` awaits."""

    def take(self) -> ClientStream | None:
        raise NotImplementedError

    async def connect(self) -> ClientStream:
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        """Close connections idle since before `now` less the idle timeout."""
        raise NotImplementedError

    def close_all(self) -> None:
        """The endpoint left its cluster: close idle connections, and busy ones when done."""
        raise NotImplementedError

    def idle_count(self) -> int:
        raise NotImplementedError


class ResponseHandler:
    """What a client codec tells the exchange of its upstream stream."""

    def on_response_head(self, resp: ResponseHead) -> None:
        raise NotImplementedError

    def on_response_data(self, data: bytes) -> None:
        raise NotImplementedError

    def on_response_end(self, trailers: Trailers) -> None:
        raise NotImplementedError

    def on_upstream_lost(self, got_bytes: bool, error: str) -> None:
        raise NotImplementedError

    def on_upstream_read_done(self) -> None:
        """Everything of one upstream read has been handed over."""
        raise NotImplementedError

    def on_upstream_paused(self) -> None:
        raise NotImplementedError

    def on_upstream_resumed(self) -> None:
        raise NotImplementedError
