"""HTTP/2 to the upstream: one connection multiplexing many `ClientStream`s (libnghttp2 through
`ngh2`, sans-I/O: this module feeds it bytes and writes what it produces).

Each exchange's try is an `H2Stream`: a request stream on a shared `H2Connection`. The pool
(h2/pool.py) hands out a stream only while the connection has room under the peer's
SETTINGS_MAX_CONCURRENT_STREAMS, and counts the stream's slot from `take` to its release.

Flow control both ways, with backpressure:
- upstream-bound: ngh2 queues request body the peer's windows do not admit yet; while more
  than `SEND_QUEUE_HIGH` bytes of a stream wait, its exchange is told the upstream is full
  (`on_upstream_paused`, which pauses the client) until the queue drains below
  `SEND_QUEUE_LOW`; a transport above its write-buffer high-water mark pauses every stream.
- client-bound: received DATA is acknowledged (WINDOW_UPDATE) as it is handed to the
  exchange, except while the exchange paused the stream (its client is slow): then the bytes
  are acknowledged on resume, so the upstream stops once the stream's window is spent.

GOAWAY: the connection takes no new stream; streams above the last stream id the peer
processed end with `upstream_refused` (never processed: the forwarder may send them again,
whatever the method), as do streams the peer refuses with REFUSED_STREAM; the rest finish.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Final

import ngh2
from mypy_extensions import trait

from edgeward.http.fields import Headers
from edgeward.http.h1.client import digits
from edgeward.http.h1.wire import WRITE_HIGH, WRITE_LOW, set_nodelay
from edgeward.http.headers import (
    KIND_CONTENT_LENGTH,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    header_kind,
    keep_trailer,
)
from edgeward.http.message import NO_BODY, STREAMED, RequestHead, ResponseHead
from edgeward.http.stream import ClientStream, ResponseHandler, Trailers

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint

# Windows the gateway grants each upstream: 1 MiB per stream lets one stream fill a 10 Gbit/s
# link at 1 ms RTT while bounding what a paused stream can hold; the connection gets 16 streams'
# worth (Envoy's upstream defaults are 256 MiB each, which its docs advise lowering at the edge;
# nginx grants 64 KiB per stream as a server).
STREAM_WINDOW: Final = 1024 * 1024
CONNECTION_WINDOW: Final = 16 * STREAM_WINDOW
# Request body queued in ngh2 for one stream beyond which its client is paused (the HTTP/1.1
# codec's transport high/low-water marks, per stream).
SEND_QUEUE_HIGH: Final = WRITE_HIGH
SEND_QUEUE_LOW: Final = WRITE_LOW
# Until the peer's SETTINGS arrive: RFC 9113 recommends at least 100 concurrent streams.
ASSUMED_MAX_STREAMS: Final = 100

REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
NO_ERROR: Final = 0x0
MAX_CONCURRENT_STREAMS: Final = 0x3

_SETTINGS: Final = {
    ngh2.Setting.ENABLE_PUSH: 0,
    ngh2.Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
}
_CONFIG: Final = ngh2.Configuration(auto_window_update=False)
_STATUS: Final = b":status"
_TE: Final = (b"te", b"trailers")
# Connection-specific fields (RFC 9113 §8.2.2) an HTTP/1.1 client may have sent; the server
# codec drops the hop-by-hop ones, Host becomes :authority, TE is the gateway's own.
_NOT_SENT: Final = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection",
                              b"transfer-encoding", b"upgrade", b"te"})


@trait
class H2Owner:
    """What a connection tells its pool (h2/pool.py H2Pool)."""

    endpoint: Endpoint
    loop: asyncio.AbstractEventLoop

    def stream_done(self, conn: H2Connection) -> None:
        raise NotImplementedError

    def retire(self, conn: H2Connection) -> None:
        raise NotImplementedError

    def forget(self, conn: H2Connection) -> None:
        raise NotImplementedError


class H2Stream(ClientStream):
    """One request on an HTTP/2 connection, from the pool's `take` to `release`/`abort`."""

    __slots__ = ("conn", "sid", "handler", "got_bytes", "paused", "unacked", "ended",
                 "finished", "trailers", "full")

    def __init__(self, conn: H2Connection) -> None:
        self.conn = conn
        self.sid = 0            # 0 until the request head is sent
        self.handler: ResponseHandler | None = None
        self.reused = conn.served > 0
        self.got_bytes = False
        self.paused = False     # the exchange paused the response (its client is slow)
        self.unacked = 0        # response bytes held back from WINDOW_UPDATE while paused
        self.ended = False      # the request's end went out
        self.finished = False   # the slot went back to the connection
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.full = False       # more request body is queued than SEND_QUEUE_HIGH

    # ClientStream ------------------------------------------------------------------------------
    def send_head(self, head: RequestHead, handler: ResponseHandler) -> None:
        self.handler = handler
        conn = self.conn
        try:
            sid = conn.h2.send_request(request_fields(head, conn.scheme),
                                       end_stream=head.body_length == NO_BODY)
        except ngh2.NGH2Error:
            conn.refuse(self)
            return
        self.sid = sid
        self.ended = head.body_length == NO_BODY
        conn.streams[sid] = self
        conn.dirty()

    def send_data(self, data: bytes) -> None:
        if self.sid == 0 or self.ended or not data or self.finished:
            return
        conn = self.conn
        try:
            conn.h2.send_data(self.sid, data)
        except ngh2.NGH2Error:
            return  # the stream is gone; its end reaches the handler through its events
        conn.dirty()
        if not self.full and conn.h2.queued_body_size(self.sid) > SEND_QUEUE_HIGH:
            self.full = True
            conn.full.add(self)
            if self.handler is not None and not conn.write_paused:
                self.handler.on_upstream_paused()

    def send_end(self, trailers: Trailers) -> None:
        if self.sid == 0 or self.ended or self.finished:
            return
        self.ended = True
        conn = self.conn
        try:
            if trailers:
                conn.h2.send_trailers(self.sid, [(n.lower(), v) for n, v in trailers])
            else:
                conn.h2.end_stream(self.sid)
        except ngh2.NGH2Error:
            return
        conn.dirty()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if self.unacked:
                self.conn.ack(self.unacked, self.sid)
                self.unacked = 0
                self.conn.dirty()

    def release(self, reusable: bool) -> None:
        self._finish(not reusable)

    def detach(self) -> tuple[asyncio.Transport, bytes] | None:
        return None  # no protocol switch on HTTP/2 (RFC 9113 §8.6)

    def abort(self) -> None:
        self._finish(True)

    def _finish(self, reset: bool) -> None:
        self.handler = None
        if self.finished:
            return
        self.finished = True
        conn = self.conn
        if self.unacked:
            conn.ack(self.unacked, self.sid)  # the connection's window is shared
            self.unacked = 0
        if self.sid in conn.streams and (reset or not self.ended):
            # Still open upstream: stop the upstream's work on it (RFC 9113 §8.1: a response
            # complete before the request is, is answered so too).
            conn.h2.reset_stream(self.sid, CANCEL)
            conn.dirty()
        conn.stream_done(self)

    # from the connection ---------------------------------------------------------------------
    def on_head(self, fields: tuple[ngh2.Header, ...], end: bool) -> None:
        handler = self.handler
        self.got_bytes = True
        if handler is None:
            return
        resp = response_head(fields, end)
        if resp is None:
            self.lost("bad_gateway")
            return
        handler.on_response_head(resp)
        if end:
            self.end(None)

    def on_data(self, data: bytes, end: bool) -> None:
        handler = self.handler
        if self.paused and handler is not None:
            self.unacked += len(data)
        else:
            self.conn.ack(len(data), self.sid)
        if handler is not None:
            handler.on_response_data(data)
        if end:
            self.end(None)

    def on_trailers(self, fields: tuple[ngh2.Header, ...]) -> None:
        trailers: list[tuple[bytes, bytes]] | None = None
        for name, value in fields:
            trailers = keep_trailer(trailers, name, value)
        self.end(trailers)

    def end(self, trailers: Trailers) -> None:
        handler = self.handler
        if handler is not None:
            self.handler = None
            handler.on_response_end(trailers)
            # The forwarder released the stream; if it has not (a subrequest), the slot stays
            # taken until it does.

    def lost(self, error: str) -> None:
        """The stream ended without its response (reset, GOAWAY, connection lost): its slot
        goes back now, since nobody releases a stream its handler was told is gone."""
        handler = self.handler
        self.handler = None
        if not self.finished:
            self.finished = True
            conn = self.conn
            if self.unacked:
                conn.ack(self.unacked, self.sid)  # the connection's window is shared
                self.unacked = 0
            conn.full.discard(self)
            conn.stream_done(self)
        if handler is not None:
            handler.on_upstream_lost(self.got_bytes, error)

    def __repr__(self) -> str:
        return f"<H2Stream {self.sid} on {self.conn!r}>"


class H2Connection:
    """An asyncio protocol around one ngh2 client connection to an endpoint."""

    __slots__ = ("pool", "h2", "transport", "streams", "active", "served", "draining",
                 "closed", "flushing", "idle_since", "scheme", "full", "write_paused",
                 "touched", "last_sid", "loop", "settled")

    def __init__(self, pool: H2Owner, scheme: bytes) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.h2 = ngh2.Connection(ngh2.Role.CLIENT, _CONFIG)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.active = 0           # slots taken (streams handed out and not yet finished)
        self.served = 0           # streams handed out so far
        self.draining = False     # GOAWAY received or the pool closed: no new streams
        self.closed = False
        self.flushing = False     # a flush is scheduled for this loop iteration
        self.idle_since = 0.0
        self.scheme = scheme
        self.full: set[H2Stream] = set()
        self.write_paused = False
        self.touched: list[H2Stream] = []  # streams that got events in this read
        self.last_sid = 0x7FFFFFFF  # the peer's GOAWAY last stream id
        # Done when the peer's first SETTINGS arrived (its stream limit is known): the pool
        # hands out no stream before, so a burst of requests never exceeds that limit.
        self.settled: asyncio.Future[None] = self.loop.create_future()

    def capacity(self) -> int:
        """Streams the peer allows at once (its SETTINGS, or the RFC's recommended 100)."""
        return self.h2.remote_settings.get(MAX_CONCURRENT_STREAMS, ASSUMED_MAX_STREAMS)

    def has_room(self) -> bool:
        return (not self.draining and not self.closed and self.transport is not None
                and self.active < self.capacity() and self.h2.can_send_request)

    def open_stream(self) -> H2Stream:
        self.active += 1
        stream = H2Stream(self)
        self.served += 1
        return stream

    # asyncio protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        tr.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        set_nodelay(transport)
        h2 = self.h2
        h2.initiate_connection(_SETTINGS)
        h2.set_local_window_size(CONNECTION_WINDOW)
        tr.write(h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        h2 = self.h2
        try:
            h2.receive_data(data)
        except ngh2.NGH2Error:
            self._fail_all("bad_gateway")
            return
        touched = self.touched
        for event in h2.events():
            self._event(event)
        self.flush()
        if touched:
            self.touched = []
            for stream in touched:
                handler = stream.handler
                if handler is not None:
                    handler.on_upstream_read_done()
        if self.draining and self.active == 0:
            self.close()

    def _event(self, event: ngh2.Event) -> None:
        if isinstance(event, ngh2.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self.touched.append(stream)
                stream.on_data(event.data, event.end_stream)
        elif isinstance(event, ngh2.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self.touched.append(stream)
                stream.on_head(event.headers, event.end_stream)
        elif isinstance(event, ngh2.TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_trailers(event.headers)
        elif isinstance(event, ngh2.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                refused = event.error_code == REFUSED_STREAM and not stream.got_bytes
                stream.reused = False  # the upstream's answer, not the keep-alive race
                stream.lost("upstream_refused" if refused else "upstream_reset")
        elif isinstance(event, ngh2.StreamClosed):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                self.full.discard(stream)
                stream.lost("upstream_reset")  # closed with no end: nothing if it ended
        elif isinstance(event, ngh2.SettingsReceived):
            if not self.settled.done():
                self.settled.set_result(None)
        elif isinstance(event, ngh2.WindowUpdated):
            if self.full:
                self.drained()
        elif isinstance(event, ngh2.GoAwayReceived):
            self.goaway(event.last_stream_id)
        elif isinstance(event, ngh2.ConnectionClosed):
            self.draining = True

    def goaway(self, last_sid: int) -> None:
        """The peer stops: streams it never processed may be tried again elsewhere."""
        self.draining = True
        self.last_sid = last_sid
        for sid, stream in list(self.streams.items()):
            if sid > last_sid:
                del self.streams[sid]
                stream.lost("upstream_refused")
        self.pool.retire(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.draining = True
        if not self.settled.done():
            self.settled.set_exception(ConnectionResetError(
                "the upstream closed the connection before its HTTP/2 SETTINGS"))
            self.settled.exception()  # retrieved: the pool's wait gets it, if still waiting
        self.pool.forget(self)
        self._fail_all("upstream_tls_error" if isinstance(exc, ssl.SSLError)
                       else "upstream_reset")

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in list(self.streams.values()):
            if stream.handler is not None and not stream.full:
                stream.handler.on_upstream_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            if stream.handler is not None and not stream.full:
                stream.handler.on_upstream_resumed()

    # the streams' side -------------------------------------------------------------------------
    def dirty(self) -> None:
        """Frames are waiting in ngh2: send them at the end of this loop iteration."""
        if not self.flushing and not self.closed:
            self.flushing = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flushing = False
        transport = self.transport
        if transport is None or self.closed:
            return
        out = self.h2.data_to_send()
        if out:
            transport.write(out)
        if self.full:
            self.drained()

    def drained(self) -> None:
        """Resume the streams whose queued request body fell below the low-water mark."""
        h2 = self.h2
        for stream in list(self.full):
            if stream.sid not in self.streams or h2.queued_body_size(stream.sid) < SEND_QUEUE_LOW:
                self.full.discard(stream)
                stream.full = False
                if stream.handler is not None and not self.write_paused:
                    stream.handler.on_upstream_resumed()

    def ack(self, amount: int, sid: int) -> None:
        """Give the peer back `amount` bytes of window (the stream's, when it is still open,
        and the connection's)."""
        try:
            self.h2.acknowledge_received_data(amount, sid)
        except (ngh2.NGH2Error, ValueError):
            pass  # the connection is ending

    def refuse(self, stream: H2Stream) -> None:
        """ngh2 would not open the stream (the connection is ending): try elsewhere."""
        self.draining = True
        stream.lost("upstream_refused")

    def stream_done(self, stream: H2Stream) -> None:
        self.active -= 1
        self.pool.stream_done(self)
        if self.draining and self.active == 0:
            self.close()

    def _fail_all(self, error: str) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        self.full.clear()
        for stream in streams:
            stream.lost(error)

    def close(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            self.draining = True
            try:
                self.h2.terminate_connection(NO_ERROR)
                transport.write(self.h2.data_to_send())
            except ngh2.NGH2Error:
                pass
            transport.close()

    def abort(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            transport.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("draining" if self.draining else "open")
        return f"<H2Connection {self.pool.endpoint.key} {state} streams={self.active}>"


def request_fields(head: RequestHead, scheme: bytes) -> list[tuple[bytes, bytes]]:
    """The request's HTTP/2 header list: pseudo-fields, then its fields in lower case (less
    the connection-specific ones), then `te: trailers` (gRPC servers look for it)."""
    out = [
        (b":method", head.method.encode("ascii")),
        (b":scheme", scheme),
        (b":authority", head.authority),
        (b":path", head.target),
    ]
    for name, value in head.headers.fields:
        lower = name.lower()
        if lower not in _NOT_SENT:
            out.append((lower, value))
    out.append(_TE)
    return out


def response_head(fields: tuple[ngh2.Header, ...], end: bool) -> ResponseHead | None:
    """The upstream's response head as the exchange takes it; None when :status is missing."""
    status = 0
    length = STREAMED
    kept: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == _STATUS and len(value) == 3 and value.isdigit():
                status = int(value)
            continue
        kind = header_kind(name)
        if kind == KIND_PLAIN or kind > KIND_REQUEST_ID:
            kept.append((name, value))
        elif kind == KIND_CONTENT_LENGTH and value.isdigit():
            length = digits(value)
    if status < 200:
        return None
    if end and length == STREAMED:
        length = NO_BODY
    return ResponseHead(status, Headers(kept), length)
