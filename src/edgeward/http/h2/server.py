"""HTTP/2 client connections: many request streams over one connection, each an exchange.

`H2Connection` is the asyncio protocol of a connection that speaks HTTP/2 (chosen by ALPN or
by the prior-knowledge preface: http/h2/select.py). The codec (http/h2/codec.py) turns the
client's bytes into calls here; each new request stream gets a head (http/h2/request_head.py),
an `H2ServerStream` and a handler from the listener's factory, exactly as an HTTP/1.1 request
does, so routing, filters and metrics are the same.

Limits (http/h2/limits.py `Guard`): a violation ends the connection with GOAWAY
(ENHANCE_YOUR_CALM, or PROTOCOL_ERROR for a broken protocol), cancels every stream's exchange
(and with it the upstream work) and counts in `ListenerState.h2_closed[reason]`. Every stream
the codec or the gateway resets cancels its exchange too (MadeYouReset).

Shutdown and reloads: `close_if_idle` sends GOAWAY (NO_ERROR, the last stream received): the
streams in flight finish, new ones are refused, and the connection closes when the last ends.
A connection without streams for server.idle_timeout gets the same GOAWAY and closes.

Deadlines: one timer per connection, armed for the earliest deadline it was told of (a
stream's, or the idle timeout's); a stream's deadline moving later costs nothing, and when the
timer fires it checks every stream, tells those past their deadline, and re-arms for the next.
"""

from __future__ import annotations

import asyncio
from typing import Final

from edgeward.http.date import DATE, http_date
from edgeward.http.errors import ERRORS, PROBLEM_JSON, error_body
from edgeward.http.h1.head import HeadBuilder, Refused
from edgeward.http.h1.wire import set_nodelay
from edgeward.http.h2.codec import (
    CONTROL_GOAWAY,
    CONTROL_PING,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Fields,
    H2Codec,
)
from edgeward.http.h2.limits import (
    EMPTY_FRAME,
    PING,
    PROTOCOL,
    SERVER_RESET,
    Guard,
    H2Limits,
)
from edgeward.http.h2.request_head import Malformed, build_head
from edgeward.http.h2.stream import (
    NO_DEADLINE,
    QUEUED_HIGH,
    QUEUED_LOW,
    H2ServerStream,
    StreamOwner,
)
from edgeward.http.headers import keep_trailer
from edgeward.http.listener import ListenerState

# The socket's write buffer marks: above HIGH every stream's exchange is told to pause.
WRITE_HIGH: Final = 256 * 1024
WRITE_LOW: Final = 64 * 1024


class H2Connection(StreamOwner):
    """One HTTP/2 client connection (an asyncio protocol by shape)."""

    __slots__ = ("state", "loop", "limits", "transport", "codec", "guard", "builder", "streams",
                 "closing", "going_away", "write_paused", "flush_due", "timer", "timer_at",
                 "idle_since",
                 "extra_fields", "blocked", "client_reset", "holding")

    def __init__(self, state: ListenerState, loop: asyncio.AbstractEventLoop,
                 limits: H2Limits) -> None:
        self.state = state
        self.loop = loop
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.codec = H2Codec(limits)
        self.guard = Guard(limits, loop.time())
        self.builder = HeadBuilder(state)
        self.streams: dict[int, H2ServerStream] = {}
        self.closing = False
        self.going_away = False  # GOAWAY sent or received: no new streams
        self.write_paused = False
        self.flush_due = False
        self.timer: asyncio.TimerHandle | None = None  # the streams' deadlines and idleness
        self.timer_at = 0.0
        self.idle_since = loop.time()
        self.extra_fields = _fields_of(state.response_line)
        self.blocked: set[H2ServerStream] = set()  # streams whose exchange was told to pause
        self.client_reset = 0  # the stream the client reset last (its close is no glitch)
        self.holding: list[H2ServerStream] = []  # streams with a body chunk held back

    # asyncio protocol ----------------------------------------
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
        self.builder.client_ip = peer[0] if peer else ""
        if state.peer_cert is not None:
            self.builder.client_cert = state.peer_cert(transport.get_extra_info("ssl_object"))
        state.connections.add(self)
        self.deadline_at(self.idle_since + state.settings.idle_timeout)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.guard.new_read()
        ended = self.codec.feed(data, self)
        if ended:
            self._ended(ended, 0)
        elif self.state.draining and not self.going_away:
            self.close_if_idle()  # accepted while draining: these streams, then GOAWAY
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # the client sends nothing more: its streams cannot complete

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        self.state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._cancel_all()

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            _block(self, stream)

    def resume_writing(self) -> None:
        self.write_paused = False
        _unblock(self)

    # the codec's reports ----------------------------------------
    def on_request(self, stream_id: int, headers: Fields, end_stream: bool) -> None:
        if self.closing:
            return
        if self.going_away:
            self.codec.reset(stream_id, REFUSED_STREAM)
            return
        over = self.guard.stream_opened()
        if over:
            self._ended(over, ENHANCE_YOUR_CALM)
            return
        try:
            head = build_head(self.builder, headers, end_stream)
        except Malformed:
            self.codec.reset(stream_id, PROTOCOL_ERROR)  # a glitch when it is closed
            return
        except Refused as refused:
            _refuse(self.codec, self.state, stream_id, refused, end_stream)
            return
        stream = H2ServerStream(self, stream_id, end_stream)
        self.streams[stream_id] = stream
        handler = self.state.factory.create(stream, head)
        stream.handler = handler
        handler.start()

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        size = len(data)
        stream = self.streams.get(stream_id)
        handler = stream.handler if stream is not None else None
        if stream is None or handler is None:
            if size:
                self.codec.ack(stream_id, size)  # not wanted: the connection window is given back
            return
        if size:
            handler.on_request_data(data)
            stream.took(size)
        elif not end_stream:
            self._glitch(EMPTY_FRAME)
        if end_stream:
            stream.request_ended = True
            handler.on_request_end(None)

    def on_trailers(self, stream_id: int, headers: Fields) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.request_ended = True
        handler = stream.handler
        if handler is None:
            return
        trailers: list[tuple[bytes, bytes]] | None = None
        for name, value in headers:
            trailers = keep_trailer(trailers, name, value)
        handler.on_request_end(trailers)

    def on_reset(self, stream_id: int, error_code: int) -> None:
        self.client_reset = stream_id
        stream = self.streams.pop(stream_id, None)
        premature = stream is not None and not stream.response_ended
        if stream is not None:
            self._forget(stream)
        over = self.guard.client_reset(premature)
        if over:
            self._ended(over, ENHANCE_YOUR_CALM)

    def on_closed(self, stream_id: int, error_code: int, by_codec: bool) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream_id == self.client_reset:
            return  # the client's own reset, counted as such
        if by_codec or (error_code != NO_ERROR and (stream is None or not stream.reset_sent)):
            self._glitch(SERVER_RESET)  # the gateway reset it for what the client sent
        if stream is not None:
            self._forget(stream)

    def on_window(self, stream_id: int) -> None:
        over = self.guard.window_update(self.loop.time())
        if over:
            self._ended(over, ENHANCE_YOUR_CALM)
        elif self.blocked:
            self.schedule_flush()  # the flush unblocks the streams whose queue went down

    def on_control(self, kind: int) -> None:
        now = self.loop.time()
        if kind == CONTROL_PING:
            over = self.guard.glitch(PING, now)
        elif kind == CONTROL_GOAWAY:
            self.going_away = True  # the client opens no more streams
            over = ""
        else:
            over = self.guard.settings_received(now)
        if over:
            self._ended(over, ENHANCE_YOUR_CALM)

    # for the streams ----------------------------------------
    def sent_data(self, stream: H2ServerStream) -> None:
        self.guard.data_sent += 1
        # A response that ended has nothing more to pause: its queue is not asked for.
        if (not stream.blocked and not stream.response_ended
                and self.codec.queued(stream.stream_id) > QUEUED_HIGH):
            _block(self, stream)
        self.schedule_flush()

    def reset_stream(self, stream: H2ServerStream, code: int) -> None:
        if stream.reset_sent:
            return
        stream.reset_sent = True
        if stream.unacked:
            self.codec.ack(stream.stream_id, stream.unacked)
            stream.unacked = 0
        self.codec.reset(stream.stream_id, code)
        self.schedule_flush()

    def draining(self) -> bool:
        return self.state.draining

    def hold(self, stream: H2ServerStream) -> None:
        self.holding.append(stream)
        self.schedule_flush()

    def deadline_at(self, when: float) -> None:
        timer = self.timer
        if timer is None or when < self.timer_at:
            if timer is not None:
                timer.cancel()
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)

    def schedule_flush(self) -> None:
        if not self.flush_due:
            self.flush_due = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what the codec has; close once it is finished."""
        self.flush_due = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        codec = self.codec
        holding = self.holding
        if holding:
            for stream in holding:
                stream.release()
            holding.clear()
        out = codec.pending(self)
        if self.closing:
            out += codec.pending(self)  # a close reported while writing ended the connection
        if out:
            transport.write(out)
        if codec.finished and not self.closing and not self.going_away:
            self._ended(PROTOCOL, 0)  # the codec ended the connection (its GOAWAY is out)
        if codec.finished or (self.closing and not self.streams):
            self.closing = True
            transport.close()
            return
        if self.blocked:
            _unblock(self)

    # draining, idling and ending ----------------------------------------
    def close_if_idle(self) -> bool:
        """For draining: GOAWAY now; close when the streams in flight have finished."""
        if not self.going_away:
            self.going_away = True
            self.codec.goaway()
        if not self.streams:
            self.closing = True
        self.flush()
        return not self.streams

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _forget(self, stream: H2ServerStream) -> None:
        """The stream is gone: its exchange (if still running) is cancelled."""
        self.blocked.discard(stream)
        handler = stream.handler
        stream.handler = None
        if handler is not None:
            handler.cancel()
        if not self.streams:
            self.idle_since = self.loop.time()
            self.deadline_at(self.idle_since + self.state.settings.idle_timeout)
            if self.going_away:
                self.closing = True
                self.schedule_flush()

    def _glitch(self, reason: str) -> None:
        over = self.guard.glitch(reason, self.loop.time())
        if over:
            self._ended(over, ENHANCE_YOUR_CALM)

    def _ended(self, reason: str, code: int) -> None:
        """A limit was broken (or the codec ended the connection: `code` 0): GOAWAY with
        `code`, every stream's exchange cancelled, the reason counted."""
        if self.closing:
            return
        counts = self.state.h2_closed
        counts[reason] = counts.get(reason, 0) + 1
        self.closing = True
        if code:
            self.codec.terminate(code if reason != PROTOCOL else PROTOCOL_ERROR)
        self._cancel_all()
        self.schedule_flush()

    def _cancel_all(self) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            self._forget(stream)

    def _on_timer(self) -> None:
        self.timer = None
        if self.transport is not None and not self.closing:
            _sweep(self, self.loop.time())

    def __repr__(self) -> str:
        return f"<H2Connection {self.builder.client_ip} streams={len(self.streams)}>"


def _block(conn: H2Connection, stream: H2ServerStream) -> None:
    """`stream`'s output is over the queue's high mark: its exchange is told to pause."""
    if stream.blocked:
        return
    stream.blocked = True
    conn.blocked.add(stream)
    handler = stream.handler
    if handler is not None:
        handler.on_downstream_paused()


def _unblock(conn: H2Connection) -> None:
    """The paused streams whose output drained below the low mark are told to resume."""
    if conn.write_paused:
        return
    codec = conn.codec
    for stream in list(conn.blocked):
        if codec.queued(stream.stream_id) <= QUEUED_LOW:
            stream.blocked = False
            conn.blocked.discard(stream)
            handler = stream.handler
            if handler is not None:
                handler.on_downstream_resumed()


def _sweep(conn: H2Connection, now: float) -> None:
    """The connection's one timer fired: the streams whose deadline passed are told so;
    without streams for server.idle_timeout the connection goes away. Re-armed for what is
    next."""
    if not conn.streams:
        idle_end = conn.idle_since + conn.state.settings.idle_timeout
        if now >= idle_end:
            conn.close_if_idle()
        else:
            conn.deadline_at(idle_end)
        return
    due: list[H2ServerStream] = []
    for stream in conn.streams.values():
        when = stream.deadline
        if when <= now:
            due.append(stream)
        elif when != NO_DEADLINE:
            conn.deadline_at(when)
    for stream in due:
        stream.expire(now)  # may set a new deadline, which arms the timer again
    if due:
        conn.schedule_flush()


def _refuse(codec: H2Codec, state: ListenerState, stream_id: int, refused: Refused,
            end_stream: bool) -> None:
    """A request the gateway will not forward: its error response on the stream (the rest
    of its body, if any, is refused with RST_STREAM NO_ERROR, RFC 9113 §8.1)."""
    code = state.settings.codes.get(refused.code, refused.code)
    entry = ERRORS[code]
    request_id = state.ids.new()
    body = error_body(code, request_id, refused.message)
    head = [(b":status", str(entry.status).encode()),
            (b"content-type", PROBLEM_JSON), (b"content-length", b"%d" % len(body)),
            (DATE, http_date()), (b"x-request-id", request_id.encode())]
    codec.respond(stream_id, head, False)
    codec.data(stream_id, body, True)
    if not end_stream:
        codec.reset(stream_id, NO_ERROR)


def _fields_of(lines: bytes) -> list[tuple[bytes, bytes]]:
    """`name: value\\r\\n` lines (the listener's own response fields) as a header list."""
    out: list[tuple[bytes, bytes]] = []
    for line in lines.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            out.append((name.strip().lower(), value.strip()))
    return out
