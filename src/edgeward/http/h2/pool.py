"""The HTTP/2 connections to one endpoint: streams on the fewest connections that have room.

`take` hands out a stream on an open connection below the peer's max concurrent streams
(the oldest such connection first, so that new connections go idle and are swept when load
falls); `connect` waits for a connection being opened and takes a stream on it, or opens
another when every connection is full. A new connection is used once the peer's first
SETTINGS arrived (one round trip, as grpc-go waits for the server's preface), so a burst
of requests on it never exceeds the peer's limit and draws REFUSED_STREAM. A connection that
got GOAWAY is retired: it finishes its streams and closes, and new streams go to a new
connection.

Plain connections use prior knowledge (RFC 9113 §3.3: the preface straight away); TLS ones
offer ALPN `h2` only and refuse a handshake that did not agree on it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from edgeward.http.h1.client import TlsOrigin
from edgeward.http.h2.client import H2Connection, H2Owner, H2Stream
from edgeward.http.stream import ClientStream, UpstreamPool

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint


class H2Pool(UpstreamPool, H2Owner):
    __slots__ = ("endpoint", "conns", "opening", "idle_timeout", "closed", "loop", "tls",
                 "server_name", "scheme", "swept", "open")

    def __init__(self, endpoint: Endpoint, *, idle_timeout: float,
                 loop: asyncio.AbstractEventLoop, tls: TlsOrigin | None = None) -> None:
        self.endpoint = endpoint
        self.conns: list[H2Connection] = []
        self.opening: asyncio.Future[H2Connection] | None = None
        self.idle_timeout = idle_timeout
        self.closed = False
        self.loop = loop
        self.tls = tls
        self.server_name = (tls.server_name or endpoint.host) if tls is not None else ""
        self.scheme = b"https" if tls is not None else b"http"
        self.swept = loop.time()
        self.open = 0

    def take(self) -> H2Stream | None:
        for conn in self.conns:
            if conn.has_room():
                return conn.open_stream()
        return None

    async def connect(self) -> ClientStream:
        while True:
            opening = self.opening
            if opening is None:
                opening = self.opening = self.loop.create_future()
                try:
                    conn = await self._open()
                except BaseException as exc:
                    self.opening = None
                    if isinstance(exc, Exception):
                        opening.set_exception(exc)
                        opening.exception()  # retrieved: waiters get it, nobody else must
                    else:
                        opening.cancel()
                    raise
                self.opening = None
                opening.set_result(conn)
            else:
                conn = await asyncio.shield(opening)
            if conn.has_room():
                return conn.open_stream()
            if conn.closed or self.closed:
                raise ConnectionResetError("the upstream closed the new HTTP/2 connection")
            stream = self.take()
            if stream is not None:
                return stream
            # Full already (many waiters on one new connection): open another.

    async def _open(self) -> H2Connection:
        tls = self.tls
        host, port = self.endpoint.host, self.endpoint.port
        if tls is None:
            _, proto = await self.loop.create_connection(  # type: ignore[type-var]
                lambda: H2Connection(self, self.scheme), host, port)
        else:
            transport, proto = await self.loop.create_connection(  # type: ignore[type-var]
                lambda: H2Connection(self, self.scheme), host, port,
                ssl=tls.context, server_hostname=self.server_name)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                transport.abort()
                raise ssl.SSLError(f"upstream {self.endpoint.key} did not agree on ALPN h2")
            tls.remember(self.server_name, transport)
        assert isinstance(proto, H2Connection)
        self.open += 1
        proto.idle_since = self.swept
        try:
            await proto.settled  # the peer's SETTINGS: its max concurrent streams
        except BaseException:
            proto.abort()
            raise
        if self.closed:
            proto.draining = True
        else:
            self.conns.append(proto)
        return proto

    # from the connections ----------------------------------------------------------------------
    def stream_done(self, conn: H2Connection) -> None:
        if conn.active == 0:
            conn.idle_since = self.swept  # the last sweep's time (h1 pools do the same)

    def retire(self, conn: H2Connection) -> None:
        """GOAWAY: no new stream goes to `conn`."""
        if conn in self.conns:
            self.conns.remove(conn)
        if conn.active == 0:
            conn.close()

    def forget(self, conn: H2Connection) -> None:
        self.open -= 1
        if conn in self.conns:
            self.conns.remove(conn)

    # UpstreamPool ------------------------------------------------------------------------------
    def sweep(self, now: float) -> None:
        limit = now - self.idle_timeout
        for conn in list(self.conns):
            if conn.active == 0 and conn.idle_since <= limit:
                self.conns.remove(conn)
                conn.close()
        self.swept = now

    def close_all(self) -> None:
        self.closed = True
        for conn in list(self.conns):
            conn.draining = True
            if conn.active == 0:
                conn.close()
        self.conns.clear()

    def idle_count(self) -> int:
        return sum(1 for conn in self.conns if conn.active == 0)

    def __repr__(self) -> str:
        kind = f" tls={self.server_name}" if self.tls is not None else ""
        streams = sum(conn.active for conn in self.conns)
        return (f"<H2Pool {self.endpoint.key}{kind} connections={len(self.conns)} "
                f"streams={streams}>")
