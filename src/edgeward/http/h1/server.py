"""HTTP/1.1 client connections: one per client, serving its requests in order as streams.

The connection parses requests (httptools callbacks; a `HeadBuilder` makes each head), asks
the listener's handler factory for a handler (an exchange) per request, and answers them in
order through its `H1ServerStream`: the response head, the body (chunked when its length is
unknown) and the end.

Pipelined requests are parsed ahead and answered in order; at most `max_pipelined` wait, after
which reading pauses. Reading also pauses after a WebSocket handshake: what follows it belongs
to the tunnel, if the upstream switches (`H1ServerStream.upgrade` hands the transport over).
One timer per connection enforces the header, idle and exchange deadlines (re-armed lazily,
not per request). Writes go through the loop's outbox, which sends
a response's head and body parts written in one loop iteration as one burst.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Final

import httptools

from edgeward.http.errors import error_response
from edgeward.http.fields import write_fields
from edgeward.http.h1.head import HeadBuilder, Refused
from edgeward.http.h1.wire import WRITE_HIGH, WRITE_LOW, chunk_end, framing_line, set_nodelay
from edgeward.http.headers import keep_trailer
from edgeward.http.listener import ListenerState
from edgeward.http.message import NO_BODY, STREAMED, RequestHead, ResponseHead
from edgeward.http.outbox import outbox_for
from edgeward.http.stream import ServerStream, StreamHandler, Trailers
from edgeward.http.tunnel import Tunnel, TunnelSettings, TunnelStats
from edgeward.http.ws_endpoint import WebSocket, WebSocketHandler

PAUSE_PIPELINE: Final = 4  # too many pipelined requests are waiting for their turn
PAUSE_REFUSED: Final = 8   # bad bytes were read: nothing more is parsed on this connection
PAUSE_UPGRADE: Final = 32  # a handshake was read: what follows it waits for the tunnel
NO_DEADLINE: Final = math.inf  # set_deadline(NO_DEADLINE): nothing to enforce for now
# llhttp (strict) stops at versions other than 0.9/1.0/1.1/2.0 with this message; such a
# client gets the same 505 as HTTP/2.0 in a request line, not a generic 400.
_LLHTTP_BAD_VERSION: Final = "Invalid HTTP version"
_CHUNK_INLINE: Final = 16384  # smaller chunks are framed by copying, larger by parts
# How a response head ends, after its fields and X-Request-Id.
_CLOSE: Final = b"connection: close\r\n\r\n"
_CHUNKED_CLOSE: Final = b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
_CHUNKED: Final = b"transfer-encoding: chunked\r\n\r\n"
_KEEP_ALIVE: Final = b"connection: keep-alive\r\n\r\n"
_SWITCH: Final = b"connection: upgrade\r\nupgrade: websocket\r\n\r\n"
# Bytes a client sent after its handshake, before the answer, kept for the tunnel (RFC 6455
# §4.1 says it sends nothing before the 101; a few frames are tolerated, more end the
# connection).
_MAX_EARLY: Final = 64 * 1024


class H1Connection:
    """One client connection (an asyncio protocol by shape: asyncio calls it by name)."""

    __slots__ = (
        "state", "loop", "transport", "parser", "builder", "stream", "client_ip", "parsing",
        "current", "queue", "paused", "closing", "deadline", "timer", "timer_at", "keep_alive",
        "refusal", "outbox", "in_head", "in_body", "wire_bytes", "head_timed", "trailers",
        "feeding", "begun", "fresh", "early", "switched",
    )

    def __init__(self, state: ListenerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.builder = HeadBuilder(state)
        self.stream = H1ServerStream(self)
        self.client_ip = ""
        self.parsing: StreamHandler | None = None  # the handler receiving a request body
        self.current: StreamHandler | None = None  # the handler being answered
        self.queue: deque[StreamHandler] = deque()
        self.paused = 0
        self.closing = False
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.keep_alive = True
        self.refusal: tuple[str, str | None] | None = None  # owed after queued replies
        self.outbox = outbox_for(loop)
        self.in_head = False
        self.in_body = False     # between a head and the end of its body
        self.wire_bytes = 0      # raw bytes received while a head is incomplete
        self.head_timed = False  # the header timeout runs for the head being read
        self.trailers: list[tuple[bytes, bytes]] | None = None
        # The bytes being parsed, the messages begun in them, and whether the first began at
        # their start: then a head that fills them exactly can be relayed as received.
        self.feeding = b""
        self.begun = 0
        self.fresh = False
        self.early = b""  # bytes read after a WebSocket handshake (for its tunnel)
        # A WebSocket connection a filter accepted during the read being parsed (it gets
        # the rest of that read).
        self.switched: WebSocket | None = None

    # asyncio protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        tr.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        set_nodelay(transport)
        state = self.state
        limit = state.settings.max_connections
        if limit and len(state.connections) >= limit:
            state.refused_connections += 1
            self.closing = True
            tr.abort()
            return
        peer = transport.get_extra_info("peername")
        self.client_ip = self.builder.client_ip = peer[0] if peer else ""
        if state.peer_cert is not None:
            self.builder.client_cert = state.peer_cert(transport.get_extra_info("ssl_object"))
        state.connections.add(self)
        self.set_deadline(self.loop.time() + self.state.settings.header_timeout)

    def data_received(self, data: bytes) -> None:
        if (self.closing and self.current is None) or self.refusal is not None:
            return  # closing, or bad bytes were seen: nothing more is parsed
        self.feeding = data
        self.begun = 0
        self.fresh = not self.in_head and not self.in_body
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if not isinstance(refused, Refused):
                raise
            self.refuse(refused.code, refused.message)
            return
        except httptools.HttpParserUpgrade as exc:
            # After a WebSocket handshake (other upgrades are refused with their head): the
            # rest of this read is the tunnel's, if there is to be one.
            self.early = data[int(exc.args[0]):]
            switched = self.switched
            if switched is not None:
                # A filter accepted the handshake while this read was parsed: the rest of
                # the read is the first frames of its connection.
                self.switched = None
                early, self.early = self.early, b""
                if early:
                    switched.data_received(early)
                return
            if len(self.early) > _MAX_EARLY:
                # Not a WebSocket client: one waits for the 101 before it sends (RFC 6455
                # §4.1). Reading pauses after the head, so this is one read at most.
                self.early = b""
                self.abort()
        except httptools.HttpParserError as exc:
            if str(exc) == _LLHTTP_BAD_VERSION:
                self.refuse("http_version_not_supported",
                            "only HTTP/1.0 and HTTP/1.1 are accepted")
            else:
                self.refuse("bad_request", f"malformed HTTP/1.1: {exc}")
            return
        finally:
            self.feeding = b""
            self.switched = None
        if self.in_head:
            # A head still incomplete after this read: bound what llhttp may be buffering,
            # and the time it may take (from here: a head that arrives whole, as most do,
            # needs no clock read).
            self.wire_bytes += len(data)
            if self.wire_bytes > self.state.settings.max_header_bytes:
                self.refuse("header_too_large")
            elif not self.head_timed and self.current is None:
                self.head_timed = True
                self.set_deadline(self.loop.time() + self.state.settings.header_timeout)

    def eof_received(self) -> bool | None:
        """The client half-closed: it sends nothing more, but still gets its answers (the
        connection closes after the last); an idle connection closes now."""
        if self.current is None and not self.queue:
            return None
        self.keep_alive = False
        self.closing = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        current = self.current
        self.current = None
        self.parsing = None
        if current is not None:
            current.cancel()
        for handler in self.queue:
            handler.cancel()
        self.queue.clear()
        self.transport = None

    def pause_writing(self) -> None:
        if self.current is not None:
            self.current.on_downstream_paused()

    def resume_writing(self) -> None:
        if self.current is not None:
            self.current.on_downstream_resumed()

    # httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.begun += 1
        self.in_head = True
        self.wire_bytes = 0
        self.head_timed = False
        self.trailers = None
        self.builder.begin()

    def on_url(self, part: bytes) -> None:
        self.builder.url_part(part)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_body:
            self.trailers = keep_trailer(self.trailers, name, value)
        else:
            self.builder.field(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        read = self.feeding if self.fresh and self.begun == 1 else None
        head = self.builder.build(self.parser, read)
        self.in_body = True
        handler = self.state.factory.create(self.stream, head)
        if head.upgrade is not None:
            self.pause_reading(PAUSE_UPGRADE)
        # A request without a body is complete with its head: nothing more comes for it.
        self.parsing = handler if head.body_length != NO_BODY else None
        if self.current is None:
            self._begin(handler)
        else:
            self.queue.append(handler)
            if len(self.queue) >= self.state.settings.max_pipelined:
                self.pause_reading(PAUSE_PIPELINE)

    def on_body(self, data: bytes) -> None:
        handler = self.parsing
        if handler is not None:
            handler.on_request_data(data)

    def on_message_complete(self) -> None:
        self.in_body = False
        trailers, self.trailers = self.trailers, None
        handler = self.parsing
        if handler is not None:
            self.parsing = None
            handler.on_request_end(trailers)

    # for the stream and the exchange ------------------------------------------------------
    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def set_deadline(self, when: float) -> None:
        """Enforce `when` (loop time); NO_DEADLINE (inf) means none for now."""
        self.deadline = when
        timer = self.timer
        if when == NO_DEADLINE:
            return  # an armed timer finds no deadline when it fires and stays unarmed
        if timer is None:
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)
        elif when < self.timer_at:
            timer.cancel()
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)

    def done(self, handler: StreamHandler, now: float) -> None:
        if handler is not self.current:
            return
        self.current = None
        if not self.keep_alive or handler is self.parsing or self.closing:
            self._close()  # the request body was never read to its end: the stream is lost
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.resume_reading(PAUSE_PIPELINE)
            self._begin(nxt)
        elif self.refusal is not None:
            code, message = self.refusal
            self.refusal = None
            self.closing = True
            if self.transport is not None:
                self.outbox.write(self.transport, error_response(
                    code, self.state.ids.new(), message=message, close=True))
            self._close()
        elif self.state.draining:
            self._close()
        elif self.in_head:
            # The next head began while this request was answered: it has header_timeout
            # from now, as if it had begun now (the exchange's clock, CLOCK_MONOTONIC).
            self.head_timed = True
            self.set_deadline(now + self.state.settings.header_timeout)
        else:
            # The exchange's clock (CLOCK_MONOTONIC, as the loop's): no clock read here.
            self.set_deadline(now + self.state.settings.idle_timeout)

    # refusals and endings ------------------------------------------------------------------
    def refuse(self, code: str, message: str | None = None) -> None:
        """Answer a request the gateway will not forward, then close the connection."""
        _refuse(self, code, message)

    def close_if_idle(self) -> bool:
        """For draining: close now when nothing is in flight; else after the current reply."""
        self.closing = True
        if self.current is None and not self.in_head:
            self._close()
            return True
        return False

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def detach(self) -> tuple[asyncio.Transport, bytes] | None:
        """Give the transport up (to a tunnel), with the bytes read after the handshake; the
        connection forgets it (no timer, not drained as a connection)."""
        return _detach(self)

    def _begin(self, handler: StreamHandler) -> None:
        self.current = handler
        self.keep_alive = not self.state.draining
        handler.start()

    def _on_timer(self) -> None:
        _timer_fired(self)

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.outbox.close(self.transport)

    def __repr__(self) -> str:
        return f"<H1Connection {self.client_ip} queued={len(self.queue)}>"


def _timer_fired(conn: H1Connection) -> None:
    """The connection's one timer: re-armed when the deadline moved later, else the
    deadline of the request being answered, the header timeout, or the idle timeout."""
    conn.timer = None
    if conn.transport is None:
        return
    now = conn.loop.time()
    if now < conn.deadline:
        if conn.deadline != NO_DEADLINE:
            conn.timer_at = conn.deadline
            conn.timer = conn.loop.call_at(conn.deadline, conn._on_timer)
        return
    current = conn.current
    if current is not None:
        current.on_deadline(now)
    elif conn.in_head:
        conn.refuse("request_timeout")
    else:
        conn._close()  # idle keep-alive connection, or no request byte at all


def _refuse(conn: H1Connection, code: str, message: str | None = None) -> None:
    """Answer a request the gateway will not forward, then close the connection."""
    conn.in_head = False
    if conn.closing or conn.refusal is not None or conn.transport is None:
        return
    current = conn.current
    code = conn.state.settings.codes.get(code, code)
    if current is None:
        conn.closing = True
        conn.keep_alive = False
        conn.outbox.write(conn.transport, error_response(
            code, conn.state.ids.new(), message=message, close=True))
        conn.outbox.close(conn.transport)
    elif conn.parsing is current:
        # The body of the request in progress is malformed (bad chunk size or
        # terminator): it can never complete, so the exchange fails now (the upstream
        # connection is aborted, its half-sent request with it) instead of waiting on a
        # body that will not come.
        conn.closing = True
        conn.keep_alive = False
        conn.parsing = None
        current.on_request_error(code, message)
    else:
        # Bad bytes behind a request still being answered: the requests parsed before
        # them are answered first, in order, then this refusal, then the connection
        # closes (nothing after bad bytes can be trusted). A queued request whose body
        # broke off can never complete, so it is dropped with the connection.
        broken = conn.parsing
        if broken is not None:
            conn.parsing = None
            if broken in conn.queue:
                conn.queue.remove(broken)
                broken.cancel()
        conn.refusal = (code, message)
        conn.pause_reading(PAUSE_REFUSED)


def _detach(conn: H1Connection) -> tuple[asyncio.Transport, bytes] | None:
    """Give the transport up (to a tunnel), with the bytes read after the handshake; the
    connection forgets it (no timer, not drained as a connection)."""
    transport = conn.transport
    if transport is None or conn.closing or conn.queue or conn.refusal is not None:
        return None
    conn.closing = True
    conn.transport = None
    conn.current = conn.parsing = None
    conn.state.connections.discard(conn)
    if conn.timer is not None:
        conn.timer.cancel()
        conn.timer = None
    early, conn.early = conn.early, b""
    return transport, early


class H1ServerStream(ServerStream):
    """The stream of the request a connection is answering: writes its response."""

    __slots__ = ("conn", "out_chunked", "head_only")

    def __init__(self, conn: H1Connection) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.out_chunked = False
        self.head_only = False

    def send_head(self, resp: ResponseHead, request: RequestHead) -> None:
        conn = self.conn
        transport = conn.transport
        if transport is None:
            return
        # Not after a request whose body was not read to its end (a refusal of it).
        keep = (conn.keep_alive and request.keep_alive and not conn.closing
                and conn.parsing is not conn.current)
        http10 = request.http10
        head_only = self.head_only = request.method == "HEAD"
        body_length = resp.body_length
        start = _start(resp, head_only)
        self.out_chunked = False
        if body_length == STREAMED and not head_only:
            if not http10:
                self.out_chunked = True
            else:
                keep = False  # HTTP/1.0 without a length: the body ends when the connection does
        if not keep:
            conn.keep_alive = False
            end = _CHUNKED_CLOSE if self.out_chunked else _CLOSE
        elif http10:
            end = _KEEP_ALIVE
        else:
            end = _CHUNKED if self.out_chunked else b"\r\n"
        conn.outbox.write(transport, start + request.id_line + conn.state.response_line + end)

    def send_data(self, data: bytes) -> None:
        conn = self.conn
        transport = conn.transport
        if transport is None or not data or self.head_only:
            return
        if not self.out_chunked:
            conn.outbox.write(transport, data)
        elif len(data) < _CHUNK_INLINE:
            conn.outbox.write(transport, b"%x\r\n%b\r\n" % (len(data), data))
        else:
            conn.outbox.write(transport, [b"%x\r\n" % len(data), data, b"\r\n"])

    def send_end(self, trailers: Trailers) -> None:
        transport = self.conn.transport
        if transport is not None and self.out_chunked:
            self.conn.outbox.write(transport, chunk_end(trailers))

    def send_continue(self) -> None:
        transport = self.conn.transport
        if transport is not None:
            self.conn.outbox.write(transport, b"HTTP/1.1 100 Continue\r\n\r\n")

    def reset(self) -> None:
        conn = self.conn
        conn.keep_alive = False
        conn.closing = True
        if conn.transport is not None:
            conn.transport.abort()

    def pause_reading(self, reason: int) -> None:
        self.conn.pause_reading(reason)

    def resume_reading(self, reason: int) -> None:
        self.conn.resume_reading(reason)

    def draining(self) -> bool:
        return self.conn.state.draining

    def set_deadline(self, when: float) -> None:
        self.conn.set_deadline(when)

    def done(self, handler: StreamHandler, now: float) -> None:
        self.conn.done(handler, now)

    def upgrade(self, resp: ResponseHead, request: RequestHead, upstream: asyncio.Transport,
                upstream_early: bytes, settings: TunnelSettings, stats: TunnelStats) -> bool:
        conn = self.conn
        transport = conn.transport
        if transport is None or conn.state.draining:
            return False
        conn.outbox.write(transport, _start(resp, False) + request.id_line + _SWITCH)
        detached = conn.detach()
        if detached is None:
            return False
        client, client_early = detached
        Tunnel(conn.loop, conn.state.tunnels, client, upstream, settings, stats).start(
            client_early, upstream_early)
        return True

    def accept_websocket(self, resp: ResponseHead, request: RequestHead,
                         handler: WebSocketHandler, settings: TunnelSettings,
                         stats: TunnelStats) -> bool:
        conn = self.conn
        transport = conn.transport
        if (transport is None or conn.state.draining or conn.queue or conn.closing
                or conn.refusal is not None):
            return False
        conn.outbox.write(transport, _start(resp, False) + request.id_line + _SWITCH)
        detached = conn.detach()
        if detached is None:
            return False  # cannot happen after the checks above; nothing more is sent
        client, early = detached
        ws = WebSocket(request, handler, conn.loop, conn.state.endpoints, settings, stats)
        if conn.feeding:
            conn.switched = ws  # the handshake's read is being parsed: the rest comes after
        ws.start(client, early)
        return True


def _start(resp: ResponseHead, head_only: bool) -> bytes:
    """A response head's status line and fields (Content-Length included when it has one):
    as received plus what the gateway added when that still holds, else written anew."""
    if resp.relayable():
        wire = resp.wire()
        if wire is not None:
            return wire  # nobody looked at the fields: the head as received, plus additions
        relayed = resp.headers.relayed()
        assert relayed is not None  # relayable(): the parsed fields kept the received head
        return relayed
    parts = [framing_line(resp.status, resp.body_length, head_only)]
    write_fields(parts, resp.headers.fields)
    return b"".join(parts)
