"""HTTP/1.1 to the upstream: one Protocol per connection and a keep-alive pool per endpoint.

The connection reports to its owner (an exchange) through the `UpstreamOwner` methods; pool
bookkeeping (`take`, `give_back`, `sweep`) is synchronous; only `connect` awaits.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import httptools

from edgeward.http.headers import HOP_BY_HOP, connection_tokens
from edgeward.http.message import NO_BODY, STREAMED
from edgeward.http.outbox import Outbox, outbox_for

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint

# Write buffer limits for both sides: above HIGH the other side stops reading, below LOW
# it resumes. 64 KiB matches asyncio's own default high-water mark.
WRITE_HIGH = 64 * 1024
WRITE_LOW = 16 * 1024

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# `Connection:` tokens that name no extra header to remove.
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Small writes leave at once: no Nagle delay between a head and its body."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class UpstreamOwner(Protocol):
    def on_response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], body_length: int,
        content_length: bytes | None,
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None: ...
    def on_upstream_lost(self, got_bytes: bool, error: str) -> None: ...
    def on_upstream_read_done(self) -> None: ...
    def on_upstream_paused(self) -> None: ...
    def on_upstream_resumed(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an endpoint, serving one exchange at a time."""

    __slots__ = (
        "pool", "transport", "owner", "parser", "headers", "trailers", "in_body", "got_bytes",
        "head_only", "idle_since", "closed", "reused", "status", "close_delimited",
    )

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.owner: UpstreamOwner | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.in_body = False
        self.got_bytes = False
        self.head_only = False
        self.idle_since = 0.0
        self.closed = False
        self.reused = False
        self.status = 0
        self.close_delimited = False  # the response has neither length nor chunked framing

    # asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        tr.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        set_nodelay(transport)
        self.pool.open += 1

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:
            # An idle connection must stay silent; anything here is a protocol error.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_gateway")
            return
        owner.on_upstream_read_done()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports to the owner

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        owner = self.owner
        if owner is None:
            return
        self.owner = None
        if self.in_body and self.close_delimited:
            owner.on_response_end(None)  # a body framed by connection close ends here
        else:
            owner.on_upstream_lost(self.got_bytes, "upstream_reset")

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.on_upstream_paused()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.on_upstream_resumed()

    # httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_body:
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))
        else:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            self.headers = []  # interim (1xx) responses are consumed here, not forwarded
            return
        self.status = status
        raw, self.headers = self.headers, []
        hop = HOP_BY_HOP
        headers: list[tuple[bytes, bytes]] = []
        content_length: bytes | None = None
        chunked = False
        extra_hop: set[bytes] | None = None
        for name, value in raw:
            lname = name.lower()
            if lname in hop:
                if lname == _TRANSFER_ENCODING:
                    chunked = True
                elif lname == _CONNECTION:
                    extra_hop = connection_tokens(value)
                continue
            if lname == _CONTENT_LENGTH:
                content_length = value
                continue
            headers.append((name, value))
        if extra_hop and not extra_hop <= _PLAIN_CONNECTION:
            headers = [(n, v) for n, v in headers if n.lower() not in extra_hop]
        if self.head_only or status == 204 or status == 304:
            body_length = NO_BODY
        elif content_length is not None and not chunked:
            body_length = int(content_length)
        else:
            body_length = STREAMED
        # Only a body with neither Content-Length nor chunked ends at close (RFC 9112 §6.3
        # rule 8); a close before Content-Length bytes or the last chunk is a truncation.
        self.close_delimited = body_length == STREAMED and not chunked
        self.in_body = True
        owner = self.owner
        if owner is not None:
            owner.on_response_head(status, headers, body_length, content_length)
        if body_length == NO_BODY and self.head_only:
            # llhttp cannot be told a response to HEAD has no body: finish it here and start
            # a fresh parser for the next response on this connection.
            self.parser = httptools.HttpResponseParser(self)
            self._complete()

    def on_body(self, data: bytes) -> None:
        owner = self.owner
        if owner is not None:
            owner.on_response_body(data)

    def on_message_complete(self) -> None:
        if self.status == 0 or not self.in_body:
            return  # end of an interim response
        self._complete()

    # exchange-facing -------------------------------------------------------------------------
    def start(self, owner: UpstreamOwner, data: bytes, head_only: bool) -> None:
        self.owner = owner
        self.head_only = head_only
        self.got_bytes = False
        self.in_body = False
        self.status = 0
        self.close_delimited = False
        self.trailers = None
        assert self.transport is not None
        self.pool.outbox.write(self.transport, data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.pool.outbox.write(self.transport, data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def detach(self, reusable: bool) -> None:
        """The exchange is finished with this connection: pool it or close it."""
        self.owner = None
        if reusable and not self.closed and self.parser.should_keep_alive():
            self.pool.give_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.owner = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.pool.outbox.close(self.transport)

    def abort(self) -> None:
        self.owner = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    # internals -----------------------------------------------------------------------------
    def _complete(self) -> None:
        owner = self.owner
        self.in_body = False
        self.status = 0
        trailers, self.trailers = self.trailers, None
        if owner is not None:
            owner.on_response_end(trailers)

    def _fail(self, error: str) -> None:
        owner = self.owner
        self.abort()
        if owner is not None:
            owner.on_upstream_lost(True, error)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.owner else "idle")
        return f"<UpstreamConnection {self.pool.endpoint.key} {state}>"


class EndpointPool:
    """Idle keep-alive connections to one endpoint, most recently used first (LIFO)."""

    __slots__ = ("endpoint", "idle", "max_idle", "idle_timeout", "open", "closed", "outbox",
                 "_loop", "_clock")

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_idle: int,
        idle_timeout: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.endpoint = endpoint
        self.idle: list[UpstreamConnection] = []
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.open = 0
        self.closed = False  # set when the endpoint left its cluster: returned conns close
        self.outbox: Outbox = outbox_for(loop)
        self._loop = loop
        self._clock: Callable[[], float] = loop.time

    def take(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def give_back(self, conn: UpstreamConnection) -> None:
        if len(self.idle) < self.max_idle and not self.closed:
            conn.idle_since = self._clock()
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)

    async def connect(self) -> UpstreamConnection:
        _, proto = await self._loop.create_connection(
            lambda: UpstreamConnection(self), self.endpoint.host, self.endpoint.port
        )
        assert isinstance(proto, UpstreamConnection)
        return proto

    def sweep(self, now: float) -> None:
        """Close idle connections older than idle_timeout (oldest sit at the front)."""
        limit = now - self.idle_timeout
        while self.idle and self.idle[0].idle_since < limit:
            self.idle.pop(0).close()

    def close_all(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()

    def __repr__(self) -> str:
        return f"<EndpointPool {self.endpoint.key} idle={len(self.idle)} open={self.open}>"


def encode_request_head(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]],
    extra: list[bytes], body_length: int,
) -> bytes:
    """HTTP/1.1 request head for the upstream; `extra` are ready-made `name: value\\r\\n` lines."""
    parts = [method.encode(), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.extend(extra)
    if body_length > 0:
        parts.append(b"content-length: %d\r\n\r\n" % body_length)
    elif body_length == STREAMED:
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
    elif method in _BODY_METHODS:
        parts.append(b"content-length: 0\r\n\r\n")  # some origins answer 411 without it
    else:
        parts.append(b"\r\n")
    return b"".join(parts)
