"""HTTP/1.1 to the upstream: one Protocol per connection and a keep-alive pool per endpoint.

The connection reports to its owner (an exchange) through the `UpstreamOwner` methods; pool
bookkeeping (`take`, `give_back`, `sweep`) is synchronous; only `connect` awaits.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Final, Protocol

import httptools

from edgeward.http.headers import (
    KIND_CONNECTION,
    KIND_CONTENT_LENGTH,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    KIND_TRANSFER_ENCODING,
    PLAIN_CONNECTION,
    connection_tokens,
    header_kind,
)
from edgeward.http.message import NO_BODY, SIZED, STREAMED
from edgeward.http.outbox import Outbox, outbox_for

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.proxy.exchange import Exchange

# Write buffer limits for both sides: above HIGH the other side stops reading, below LOW
# it resumes. 64 KiB matches asyncio's own default high-water mark.
WRITE_HIGH: Final = 64 * 1024
WRITE_LOW: Final = 16 * 1024

# A response head longer than this is refused (502 bad_gateway), as nginx refuses one that
# does not fit proxy_buffer_size; requests have server.max_header_bytes (64 KiB) too.
MAX_RESPONSE_HEAD: Final = 64 * 1024

_CONTENT_LENGTH_ONLY: Final = frozenset({b"content-length"})
_NO_NAMES: Final[frozenset[bytes]] = frozenset()
_KEEP_ALIVE: Final = b"keep-alive"
_CLOSE: Final = b"close"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Small writes leave at once: no Nagle delay between a head and its body."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class UpstreamOwner(Protocol):
    def on_response_head(self, status: int, head: bytes, body_length: int) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None: ...
    def on_upstream_lost(self, got_bytes: bool, error: str) -> None: ...
    def on_upstream_read_done(self) -> None: ...
    def on_upstream_paused(self) -> None: ...
    def on_upstream_resumed(self) -> None: ...


class _BadResponse(Exception):
    """Raised in a parser callback: the response cannot be relayed (502 bad_gateway)."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an endpoint, serving one exchange at a time."""

    __slots__ = (
        "pool", "transport", "owner", "parser", "trailers", "in_body", "got_bytes",
        "head_only", "idle_since", "closed", "reused", "status", "close_delimited",
        "buf", "head_at", "drop", "fields_len", "content_length", "chunked", "conn_tokens",
        "keep_alive",
    )

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.owner: Exchange | None = None  # an UpstreamOwner; typed so calls are direct
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
        if not self.in_body:
            self.buf = self.buf + data if self.buf else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # includes a callback's _BadResponse
            self._fail("bad_gateway")
            return
        if not self.in_body and len(self.buf) - self.head_at > MAX_RESPONSE_HEAD:
            self._fail("bad_gateway")  # still no end of head in this much
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
            return
        at = self.fields_len
        size = len(name) + len(value) + 4  # `name: value\r\n`, as most peers write it
        self.fields_len = at + size
        kind = header_kind(name)
        if kind == KIND_PLAIN or kind > KIND_REQUEST_ID:
            return  # relayed as is, from the raw head
        if kind == KIND_CONTENT_LENGTH:
            self.content_length = value
            return  # kept unless the body turns out chunked
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
        if status < 200:
            # Interim (1xx) responses are consumed here, not forwarded.
            self.head_at = end + 2
            self._reset_head()
            return
        self.status = status
        head = buf[at:end]
        self.buf = b""
        self.head_at = 0
        tokens = self.conn_tokens
        if head[:9] != b"HTTP/1.1 ":
            head = b"HTTP/1.1" + head[8:]  # an HTTP/1.0 upstream: the client talks to us
            self.keep_alive = tokens is not None and _KEEP_ALIVE in tokens
        else:
            self.keep_alive = tokens is None or _CLOSE not in tokens
        chunked = self.chunked
        drop = self.drop
        if drop is not None:
            head = _drop_lines(head, drop, self.fields_len)
            # By name, in any case: the headers Connection lists, and a Content-Length
            # beside chunked (never both to the client).
            named = tokens - PLAIN_CONNECTION if tokens is not None else _NO_NAMES
            if chunked and self.content_length is not None:
                named = named | _CONTENT_LENGTH_ONLY
            if named:
                head = _drop_named(head, named)
        if self.head_only or status == 204 or status == 304:
            body_length = NO_BODY
        elif self.content_length is not None and not chunked:
            body_length = SIZED  # the head carries its Content-Length
        else:
            body_length = STREAMED
        # Only a body with neither Content-Length nor chunked ends at close (RFC 9112 §6.3
        # rule 8); a close before Content-Length bytes or the last chunk is a truncation.
        self.close_delimited = body_length == STREAMED and not chunked
        self.in_body = True
        owner = self.owner
        if owner is not None:
            owner.on_response_head(status, head, body_length)
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
    def start(self, owner: Exchange, data: bytes, head_only: bool) -> None:
        self.owner = owner
        self.head_only = head_only
        self.got_bytes = False
        self.in_body = False
        self.status = 0
        self.close_delimited = False
        self.trailers = None
        self.buf = b""
        self.head_at = 0
        self._reset_head()
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
        if reusable and not self.closed and self.keep_alive:
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
    def _reset_head(self) -> None:
        self.drop = None
        self.fields_len = 0
        self.content_length = None
        self.chunked = False
        self.conn_tokens = None

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
                 "swept", "_loop")

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

    async def connect(self) -> UpstreamConnection:
        _, proto = await self._loop.create_connection(
            lambda: UpstreamConnection(self), self.endpoint.host, self.endpoint.port
        )
        assert isinstance(proto, UpstreamConnection)
        return proto

    def sweep(self, now: float) -> None:
        """Close idle connections older than idle_timeout (oldest sit at the front)."""
        limit = now - self.idle_timeout
        while self.idle and self.idle[0].idle_since <= limit:
            self.idle.pop(0).close()
        self.swept = now

    def close_all(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()

    def __repr__(self) -> str:
        return f"<EndpointPool {self.endpoint.key} idle={len(self.idle)} open={self.open}>"


def request_head(wire: bytes, method: str, body_length: int) -> bytes:
    """The upstream request head: `wire` (request line and header lines) plus its framing."""
    if body_length == NO_BODY:
        if method in _BODY_METHODS:
            return wire + b"content-length: 0\r\n\r\n"  # some origins answer 411 without it
        return wire + b"\r\n"
    if body_length == STREAMED:
        return wire + b"transfer-encoding: chunked\r\n\r\n"
    return wire + b"content-length: " + str(body_length).encode() + b"\r\n\r\n"


class Field:
    """A header line to drop from a relayed head: its name as sent, and where it would start
    and how long it would be (from the first header line) if written `name: value\r\n`."""

    __slots__ = ("name", "at", "size")

    def __init__(self, name: bytes, at: int, size: int) -> None:
        self.name = name
        self.at = at
        self.size = size


def _drop_lines(head: bytes, fields: list[Field], fields_len: int) -> bytes:
    """`head` (status or request line, then header lines) without the lines of `fields`.

    Peers almost always write `name: value`, so each line is first looked for where that
    spelling puts it, and cut there if it is a whole line of that name: it starts a line,
    its name and colon are there, and a CRLF ends it at that length (a line written any
    other way differs by at most one space, never by a whole line). Else the lines still
    left go by name, as `_drop_named` does for any header.
    """
    first = len(head) - fields_len  # where the header lines start, if all are canonical
    i = len(fields) - 1
    while i >= 0:  # from the last, so the earlier positions stay valid
        f = fields[i]
        pos = first + f.at
        end = pos + f.size
        name = f.name
        if (pos >= 2 and end <= len(head) and head[pos - 2] == 13 and head[pos - 1] == 10
                and head[end - 2] == 13 and head[end - 1] == 10
                and head[pos:pos + len(name) + 1] == name + b":"):
            head = head[:pos] if end == len(head) else head[:pos] + head[end:]
        else:
            return _drop_named(head, frozenset(f.name.lower() for f in fields[:i + 1]))
        i -= 1
    return head


def _drop_named(head: bytes, names: frozenset[bytes]) -> bytes:
    """`head` without the lines of headers whose lower-case names are in `names`."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line.partition(b":")[0].lower() not in names]
    return b"\r\n".join([lines[0], *kept])
