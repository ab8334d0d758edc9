"""One HTTP/2 request stream as the exchange sees it: `H2ServerStream` (a `ServerStream`).

The response head is held until the first body bytes or the end, so a response without a
body leaves as one HEADERS frame with END_STREAM; the last body chunk is held until the next
chunk, the end or the connection's next write (within the same loop iteration), so a body
that arrives with its end leaves as HEADERS + one DATA frame with END_STREAM. Body bytes are
handed to the codec, which sends them as the client's windows allow; when more than
QUEUED_HIGH wait for its window (or the connection's socket is full), the exchange is told the
downstream paused, so it stops reading its upstream; below QUEUED_LOW it resumes.

Received DATA is acknowledged (window given back to the client) as the exchange takes it: the
connection acknowledges each DATA frame after handing it over unless the exchange paused
the stream's reading, and a paused stream acknowledges what it owes when it resumes. So a slow
upstream makes the client wait, and at most one window per stream is buffered.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final

from edgeward.http.h2.codec import INTERNAL_ERROR, NO_ERROR, CodecSink, H2Codec
from edgeward.http.headers import HOP_BY_HOP
from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.stream import ServerStream, StreamHandler, Trailers
from edgeward.http.tunnel import TunnelSettings, TunnelStats
from edgeward.http.ws_endpoint import WebSocketHandler

# Response body bytes waiting for a stream's window before its upstream is paused: one
# initial window (64 KiB), as the HTTP/1.1 codec's socket high-water mark.
QUEUED_HIGH: Final = 64 * 1024
QUEUED_LOW: Final = 16 * 1024
NO_DEADLINE: Final = math.inf
_CONTENT_LENGTH: Final = b"content-length"
_STATUS: Final = {code: str(code).encode() for code in range(100, 600)}
_NO_BODY_STATUS: Final = frozenset({204, 304})
# Received fields a response's header list never carries (Content-Length is the codec's).
_NOT_RELAYED: Final = HOP_BY_HOP | {_CONTENT_LENGTH}


class StreamOwner(CodecSink):
    """What a stream needs of its connection (implemented by http/h2/server.py)."""

    loop: asyncio.AbstractEventLoop
    codec: H2Codec
    extra_fields: list[tuple[bytes, bytes]]  # the listener's own response fields

    def sent_data(self, stream: H2ServerStream) -> None:
        raise NotImplementedError

    def reset_stream(self, stream: H2ServerStream, code: int) -> None:
        raise NotImplementedError

    def schedule_flush(self) -> None:
        raise NotImplementedError

    def draining(self) -> bool:
        """Whether the connection is draining (a GOAWAY sent or about to be)."""
        raise NotImplementedError

    def hold(self, stream: H2ServerStream) -> None:
        """`stream` holds a body chunk back: its `release` is called before the next write."""
        raise NotImplementedError

    def deadline_at(self, when: float) -> None:
        """A stream's deadline is `when`: the connection's timer fires by then."""
        raise NotImplementedError


class H2ServerStream(ServerStream):
    """The client side of one request stream (see the module docstring)."""

    __slots__ = ("conn", "stream_id", "handler", "head", "head_only", "request_ended",
                 "response_ended", "paused", "unacked", "blocked", "deadline", "reset_sent", "held")

    def __init__(self, conn: StreamOwner, stream_id: int, request_ended: bool) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.stream_id = stream_id
        self.handler: StreamHandler | None = None  # None once the exchange is done
        self.head: list[tuple[bytes, bytes]] | None = None  # the response head, not yet sent
        self.head_only = False
        self.request_ended = request_ended
        self.response_ended = False
        self.paused = 0          # reasons the exchange paused the request body
        self.unacked = 0         # DATA bytes taken while paused: acknowledged on resume
        self.blocked = False     # the exchange was told the downstream paused
        self.deadline = NO_DEADLINE  # enforced by the connection's one timer
        self.reset_sent = False
        self.held = b""  # the last body chunk, written with the next one, the end or the flush

    # the response ----------------------------------------
    def send_head(self, resp: ResponseHead, request: RequestHead) -> None:
        self.head_only = request.method == "HEAD" or resp.status in _NO_BODY_STATUS
        self.head = response_fields(resp, request, self.conn.extra_fields)

    def send_data(self, data: bytes) -> None:
        if not data or self.head_only or self.response_ended:
            return
        held = self.held
        self.held = data
        if held:
            self._push(held)
        else:
            self.conn.hold(self)

    def release(self) -> None:
        """The connection writes: the chunk held back goes to the codec."""
        held = self.held
        if held:
            self.held = b""
            self._push(held)

    def _push(self, data: bytes) -> None:
        conn = self.conn
        head = self.head
        if head is not None:
            self.head = None
            conn.codec.respond(self.stream_id, head, False)
        conn.codec.data(self.stream_id, data, False)
        conn.sent_data(self)

    def send_end(self, trailers: Trailers) -> None:
        if self.response_ended:
            return
        self.response_ended = True
        conn = self.conn
        codec = conn.codec
        sid = self.stream_id
        held = self.held
        self.held = b""
        if trailers and not self.head_only:
            if held:
                self._push(held)
            head = self.head
            if head is not None:
                codec.respond(sid, head, False)
            codec.trailers(sid, [(n.lower(), v) for n, v in trailers])
        elif held:
            head = self.head
            if head is not None:
                codec.respond(sid, head, False)
            codec.data(sid, held, True)  # the last chunk carries END_STREAM: no empty frame
            conn.sent_data(self)
        elif self.head is not None:
            codec.respond(sid, self.head, True)
        else:
            codec.end(sid)
        self.head = None
        conn.schedule_flush()

    def send_continue(self) -> None:
        self.conn.codec.informational(self.stream_id, [(b":status", b"100")])
        self.conn.schedule_flush()

    def reset(self) -> None:
        self.response_ended = True
        self.held = b""
        self.conn.reset_stream(self, INTERNAL_ERROR)

    # the request body ----------------------------------------
    def pause_reading(self, reason: int) -> None:
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.unacked:
            owed, self.unacked = self.unacked, 0
            self.conn.codec.ack(self.stream_id, owed)
            self.conn.schedule_flush()

    def took(self, size: int) -> None:
        """The exchange was handed `size` bytes of DATA: acknowledge them unless paused."""
        if self.paused:
            self.unacked += size
        else:
            self.conn.codec.ack(self.stream_id, size)

    # deadlines and the end ----------------------------------------
    def draining(self) -> bool:
        return self.conn.draining()

    def set_deadline(self, when: float) -> None:
        self.deadline = when
        if when != NO_DEADLINE:
            self.conn.deadline_at(when)

    def expire(self, now: float) -> None:
        """The connection's timer found the deadline passed: the exchange is told, once."""
        handler = self.handler
        self.deadline = NO_DEADLINE
        if handler is not None:
            handler.on_deadline(now)

    def done(self, handler: StreamHandler, now: float) -> None:
        if handler is not self.handler:
            return
        self.handler = None
        self.deadline = NO_DEADLINE
        if not self.request_ended:
            # RFC 9113 §8.1: the response is complete; the rest of the request is not wanted.
            # After the flush already due has written the response: libnghttp2 drops the
            # frames still queued for a stream once it is reset (a gRPC client then sees
            # the reset, not the trailers-only answer).
            self.conn.schedule_flush()
            self.loop.call_soon(self.conn.reset_stream, self, NO_ERROR)
            return
        self.conn.schedule_flush()

    def upgrade(self, resp: ResponseHead, request: RequestHead, upstream: asyncio.Transport,
                upstream_early: bytes, settings: TunnelSettings, stats: TunnelStats) -> bool:
        return False  # WebSocket over HTTP/2 (RFC 8441) is not offered

    def accept_websocket(self, resp: ResponseHead, request: RequestHead,
                         handler: WebSocketHandler, settings: TunnelSettings,
                         stats: TunnelStats) -> bool:
        return False  # nor ended in the gateway

    def __repr__(self) -> str:
        return f"<H2ServerStream {self.stream_id}>"


def response_fields(resp: ResponseHead, request: RequestHead,
                    extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The HTTP/2 header list of a response: `:status`, its end-to-end fields in lower case
    (connection-specific ones never, RFC 9113 §8.2.2), Content-Length when known, the request
    id and the listener's own fields (`extra`). A head nobody took apart is read from its
    received lines directly (`wire`), without making its `headers` first."""
    status = _STATUS.get(resp.status)
    out = [(b":status", status if status is not None else str(resp.status).encode())]
    wire = resp.wire()
    if wire is not None:
        _wire_fields(wire, out)
    else:
        for name, value in resp.headers.fields:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered == _CONTENT_LENGTH:
                continue
            out.append((lowered, value))
    if resp.body_length > 0:
        out.append((_CONTENT_LENGTH, b"%d" % resp.body_length))
    out.append((b"x-request-id", request.request_id.encode()))
    if extra:
        out.extend(extra)
    return out


def _wire_fields(wire: bytes, out: list[tuple[bytes, bytes]]) -> None:
    """The end-to-end fields of a received head (a parser checked it; its first line is the
    status line) appended to `out`, as `response_fields` takes them from `headers`."""
    lines = wire.split(b"\r\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if not line:
            continue
        name, _, value = line.partition(b":")
        lowered = name.lower()
        if lowered not in _NOT_RELAYED:
            out.append((lowered, value.strip(b" \t")))
