"""HTTP/1.1 to the upstream: connections serving one request at a time as `ClientStream`s,
and the keep-alive pool of each endpoint.

The connection writes the request the exchange hands it (relaying a head as received when it
can), frames the body, and reports the response to its `ResponseHandler`. The response head
becomes a `ResponseHead` whose headers' wire is the head as received minus the lines the gateway
must drop (hop-by-hop fields, the upstream's X-Request-Id, a Content-Length beside chunked),
with the status line written as HTTP/1.1.

Pool bookkeeping (`take`, `give_back`, `forget`, `sweep`) is synchronous and I/O-free; only
`connect` awaits.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Final

import httptools

from edgeward.http.h1.wire import (
    WRITE_HIGH,
    WRITE_LOW,
    Field,
    chunk,
    chunk_end,
    drop_lines,
    drop_named,
    request_bytes,
    set_nodelay,
)
from edgeward.http.headers import (
    KIND_CONNECTION,
    KIND_CONTENT_LENGTH,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    KIND_TRANSFER_ENCODING,
    PLAIN_CONNECTION,
    connection_tokens,
    header_kind,
    keep_trailer,
)
from edgeward.http.message import NO_BODY, STREAMED, RequestHead, ResponseHead
from edgeward.http.outbox import Outbox, outbox_for
from edgeward.http.stream import ClientStream, ResponseHandler, Trailers, UpstreamPool

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint

# A response head longer than this is refused (502 bad_gateway), as nginx refuses one that
# does not fit proxy_buffer_size; requests have server.max_header_bytes (64 KiB) too.
MAX_RESPONSE_HEAD: Final = 64 * 1024

_CONTENT_LENGTH_ONLY: Final = frozenset({b"content-length"})
_NO_NAMES: Final[frozenset[bytes]] = frozenset()
_KEEP_ALIVE: Final = b"keep-alive"
_CLOSE: Final = b"close"


def digits(value: bytes) -> int:
    """A Content-Length value llhttp accepted (digits only) as an int; int(bytes) goes
    through a general parser costing more than this whole loop does for a length."""
    n = 0
    for c in value:
        if 48 <= c <= 57:
            n = n * 10 + c - 48
    return n


class _BadResponse(Exception):
    """Raised in a parser callback: the response cannot be relayed (502 bad_gateway)."""


class UpstreamConnection(ClientStream):
    """One keep-alive connection to an endpoint, serving one exchange at a time."""

    __slots__ = (
        "pool", "transport", "handler", "parser", "trailers", "in_body", "got_bytes",
        "head_only", "idle_since", "closed", "status", "close_delimited", "buf", "head_at",
        "drop", "fields_len", "content_length", "chunked", "conn_tokens",
        "keep_alive", "chunked_out", "upgrading", "switched",
    )

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.handler: ResponseHandler | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.in_body = False
        self.got_bytes = False
        self.head_only = False
        self.idle_since = 0.0
        self.closed = False
        self.reused = False
        self.status = 0
        self.close_delimited = False  # the response has neither length nor chunked framing
        # The response head is relayed as received, minus the lines the gateway must drop:
        # `buf` holds the bytes read since the response began while its head is incomplete,
        # `head_at` where the final head starts in it (after any 1xx), `drop` the exact names
        # of the lines to remove.
        self.buf = b""
        self.head_at = 0
        self.drop: list[Field] | None = None
        self.fields_len = 0  # the header lines' length if each is written `name: value\r\n`
        self.content_length: bytes | None = None
        self.chunked = False
        self.conn_tokens: frozenset[bytes] | None = None
        self.keep_alive = True
        self.chunked_out = False  # the request body goes chunked
        self.upgrading = False    # the request asks to switch protocols: never pooled after
        self.switched: ResponseHead | None = None  # the 101 that answered it

    # asyncio protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        tr.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        set_nodelay(transport)
        self.pool.open += 1

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        if handler is None:
            # An idle connection must stay silent; anything here is a protocol error.
            self.close()
            return
        self.got_bytes = True
        if not self.in_body:
            self.buf = self.buf + data if self.buf else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # includes a callback's _BadResponse
            self._fail("bad_gateway")
            return
        except httptools.HttpParserUpgrade as exc:
            switched = self.switched
            if switched is None:
                self._fail("bad_gateway")  # a 101 nobody asked for
                return
            # The rest of this read is the tunnel's (a server may speak first).
            self.buf = data[int(exc.args[0]):]
            handler.on_response_head(switched)
            return
        if not self.in_body and len(self.buf) - self.head_at > MAX_RESPONSE_HEAD:
            self._fail("bad_gateway")  # still no end of head in this much
            return
        handler.on_upstream_read_done()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports to the handler

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        handler = self.handler
        if handler is None:
            return
        self.handler = None
        if self.in_body and self.close_delimited:
            handler.on_response_end(None)  # a body framed by connection close ends here
        elif isinstance(exc, ssl.SSLError):
            # A TLS alert after the handshake: with TLS 1.3 the server refuses a client
            # certificate only once the client has finished its side.
            handler.on_upstream_lost(self.got_bytes, "upstream_tls_error")
        else:
            handler.on_upstream_lost(self.got_bytes, "upstream_reset")

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.on_upstream_paused()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.on_upstream_resumed()

    # httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_body:
            self.trailers = keep_trailer(self.trailers, name, value)
            return
        at = self.fields_len
        size = len(name) + len(value) + 4  # `name: value\r\n`, as most peers write it
        self.fields_len = at + size
        kind = header_kind(name)
        if kind == KIND_PLAIN or kind > KIND_REQUEST_ID:
            return  # relayed as is, from the raw head
        if kind == KIND_CONTENT_LENGTH:
            self.content_length = value
            return  # relayed unless the body turns out chunked
        if kind == KIND_TRANSFER_ENCODING:
            self.chunked = True
        elif kind == KIND_CONNECTION:
            tokens = connection_tokens(value)
            self.conn_tokens = tokens if self.conn_tokens is None else self.conn_tokens | tokens
        drop = self.drop
        if drop is None:
            drop = self.drop = []
        drop.append(Field(name, at, size))

    def on_headers_complete(self) -> None:
        buf = self.buf
        at = self.head_at
        n = len(buf)
        while at < n and (buf[at] == 13 or buf[at] == 10):
            at += 1  # llhttp skips empty lines before a status line
        if buf[at:at + 5] != b"HTTP/":
            raise _BadResponse  # nothing llhttp accepts gets here
        # llhttp checked the line: `HTTP/x.y` SP three digits; every line ends in CRLF.
        status = (buf[at + 9] - 48) * 100 + (buf[at + 10] - 48) * 10 + buf[at + 11] - 48
        end = buf.find(b"\r\n\r\n", at) + 2
        if status == 101 and self.upgrading:
            # Switching protocols: handed to the exchange once the parser says where the
            # head ends (data_received), with what follows it.
            resp = self._response(status, buf[at:end])
            resp.body_length = resp.relay_length = NO_BODY
            self.close_delimited = False
            self.switched = resp
            self.in_body = True
            return
        if status < 200:
            # Interim (1xx) responses are consumed here, not forwarded.
            self.head_at = end + 2
            self._reset_head()
            return
        self.status = status
        self.buf = b""
        self.head_at = 0
        self.in_body = True
        resp = self._response(status, buf[at:end])
        handler = self.handler
        if handler is not None:
            handler.on_response_head(resp)
        if resp.body_length == NO_BODY and self.head_only:
            # llhttp cannot be told a response to HEAD has no body: finish it here and start
            # a fresh parser for the next response on this connection.
            self.parser = httptools.HttpResponseParser(self)
            self._complete()

    def _response(self, status: int, head: bytes) -> ResponseHead:
        tokens = self.conn_tokens
        chunked = self.chunked
        if head[:9] != b"HTTP/1.1 ":
            head = b"HTTP/1.1" + head[8:]  # an HTTP/1.0 upstream: the client talks to us
            # Transfer-Encoding on 1.0 is faulty framing (RFC 9112 §6.1): never reused.
            self.keep_alive = tokens is not None and _KEEP_ALIVE in tokens and not chunked
        else:
            self.keep_alive = tokens is None or _CLOSE not in tokens
        drop = self.drop
        if drop is not None:
            head = drop_lines(head, drop, self.fields_len)
            # By name, in any case: the headers Connection lists, and a Content-Length
            # beside chunked (never both to the client).
            named = tokens - PLAIN_CONNECTION if tokens is not None else _NO_NAMES
            if chunked and self.content_length is not None:
                named = named | _CONTENT_LENGTH_ONLY
            if named:
                head = drop_named(head, named)
        if self.head_only or status == 204 or status == 304:
            body_length = NO_BODY
        elif self.content_length is not None and not chunked:
            body_length = digits(self.content_length)
        else:
            body_length = STREAMED
        # Only a body with neither Content-Length nor chunked ends at close (RFC 9112 §6.3
        # rule 8); a close before Content-Length bytes or the last chunk is a truncation.
        self.close_delimited = body_length == STREAMED and not chunked
        return ResponseHead(status, None, body_length, head)

    def on_body(self, data: bytes) -> None:
        handler = self.handler
        if handler is not None:
            handler.on_response_data(data)

    def on_message_complete(self) -> None:
        if self.switched is not None:
            return  # a 101: no body, and the connection is the tunnel's from here
        if self.status == 0 or not self.in_body:
            return  # end of an interim response
        self._complete()

    # ClientStream ----------------------------------------------------------------------------
    def send_head(self, head: RequestHead, handler: ResponseHandler) -> None:
        self.handler = handler
        self.head_only = head.method == "HEAD"
        self.chunked_out = head.body_length == STREAMED
        self.upgrading = head.upgrade is not None
        self.switched = None
        self.got_bytes = False
        self.in_body = False
        self.status = 0
        self.close_delimited = False
        self.trailers = None
        self.buf = b""
        self.head_at = 0
        self._reset_head()
        assert self.transport is not None
        self.pool.outbox.write(self.transport, request_bytes(head))

    def send_data(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and data:
            self.pool.outbox.write(self.transport, chunk(data) if self.chunked_out else data)

    def send_end(self, trailers: Trailers) -> None:
        if self.transport is not None and not self.closed and self.chunked_out:
            self.pool.outbox.write(self.transport, chunk_end(trailers))

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def release(self, reusable: bool) -> None:
        """The exchange is finished with this connection: pool it or close it."""
        self.handler = None
        if reusable and not self.closed and self.keep_alive and not self.upgrading:
            transport = self.transport
            if transport is not None and not transport.is_reading():
                # Paused for a slow client by the read that ended the response: an idle
                # connection must read (to see the upstream close it).
                transport.resume_reading()
            self.pool.give_back(self)
        else:
            self.close()

    def detach(self) -> tuple[asyncio.Transport, bytes] | None:
        transport = self.transport
        if transport is None or self.closed or self.switched is None:
            return None
        self.handler = None
        self.closed = True
        self.transport = None
        self.pool.forget(self)  # no connection_lost will come here to do it
        early, self.buf = self.buf, b""
        return transport, early

    def close(self) -> None:
        self.handler = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.pool.outbox.close(self.transport)

    def abort(self) -> None:
        self.handler = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    # internals -----------------------------------------------------------------------------
    def _reset_head(self) -> None:
        self.drop = None
        self.fields_len = 0
        self.content_length = None
        self.chunked = False
        self.conn_tokens = None

    def _complete(self) -> None:
        handler = self.handler
        self.in_body = False
        self.status = 0
        trailers, self.trailers = self.trailers, None
        if handler is not None:
            handler.on_response_end(trailers)

    def _fail(self, error: str) -> None:
        handler = self.handler
        self.abort()
        if handler is not None:
            handler.on_upstream_lost(True, error)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.handler else "idle")
        return f"<UpstreamConnection {self.pool.endpoint.key} {state}>"


class TlsOrigin:
    """How the connections of a cluster are wrapped in TLS: the client context (verification,
    client certificate, ALPN; tls/context.py), the SNI to send (None: each endpoint's host),
    and the last session per server name, which the context offers again when it opens the
    next connection to that name (tls/context.py ResumingContext), so reconnects resume."""

    __slots__ = ("context", "server_name", "sessions")

    def __init__(self, context: ssl.SSLContext, server_name: str | None,
                 sessions: dict[str, object]) -> None:
        self.context = context
        self.server_name = server_name
        self.sessions = sessions  # shared with the context, which reads it per handshake

    def remember(self, server_name: str, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        session = getattr(ssl_object, "session", None)
        if session is not None:
            self.sessions[server_name] = session


class EndpointPool(UpstreamPool):
    """Idle keep-alive connections to one endpoint, most recently used first (LIFO).

    A pool is plain or TLS for its whole life (its cluster's `tls`): a cluster whose TLS
    settings change is a new cluster with new pools, so the two never share a connection."""

    __slots__ = ("endpoint", "idle", "max_idle", "idle_timeout", "open", "closed", "outbox",
                 "swept", "_loop", "tls", "server_name")

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_idle: int,
        idle_timeout: float,
        loop: asyncio.AbstractEventLoop,
        tls: TlsOrigin | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.server_name = (tls.server_name or endpoint.host) if tls is not None else ""
        self.idle: list[UpstreamConnection] = []
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.open = 0
        self.closed = False  # set when the endpoint left its cluster: returned conns close
        self.outbox: Outbox = outbox_for(loop)
        self._loop = loop
        self.swept = loop.time()  # when idle connections were last swept

    def take(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def give_back(self, conn: UpstreamConnection) -> None:
        tls = self.tls
        if tls is not None and not conn.reused and conn.transport is not None:
            # After a whole exchange: TLS 1.3 tickets arrive after the handshake.
            tls.remember(self.server_name, conn.transport)
        if len(self.idle) < self.max_idle and not self.closed:
            # The last sweep's time, not a clock read per request: a connection may close
            # up to one sweep interval (1 s) before idle_timeout, never after.
            conn.idle_since = self.swept
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)

    async def connect(self) -> ClientStream:
        # The connection is a protocol by shape (asyncio calls it by name), not by class.
        tls = self.tls
        if tls is None:
            _, proto = await self._loop.create_connection(  # type: ignore[type-var]
                lambda: UpstreamConnection(self), self.endpoint.host, self.endpoint.port
            )
        else:
            _, proto = await self._loop.create_connection(  # type: ignore[type-var]
                lambda: UpstreamConnection(self), self.endpoint.host, self.endpoint.port,
                ssl=tls.context, server_hostname=self.server_name,
            )
        assert isinstance(proto, UpstreamConnection)
        return proto

    def sweep(self, now: float) -> None:
        """Close idle connections older than idle_timeout (oldest sit at the front)."""
        limit = now - self.idle_timeout
        while self.idle and self.idle[0].idle_since <= limit:
            self.idle.pop(0).close()
        self.swept = now

    def idle_count(self) -> int:
        return len(self.idle)

    def close_all(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()

    def __repr__(self) -> str:
        kind = f" tls={self.server_name}" if self.tls is not None else ""
        return (f"<EndpointPool {self.endpoint.key}{kind} idle={len(self.idle)} "
                f"open={self.open}>")
