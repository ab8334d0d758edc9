"""WebSocket connections the gateway ends itself: a filter accepted the handshake
(`Reply.websocket`) and talks to the client in-process through a `WebSocketHandler`.

`WebSocket` is both the asyncio protocol of the client's connection (it takes over the
transport the HTTP/1.1 codec detached, as a tunnel does) and the filter's side of it: `send`,
`close`, `closed`, `paused`, `drain`. Frames are decoded and encoded by `ws_codec` (sans I/O);
this module does the I/O and calls the handler:

- `on_open` once the 101 is written; `on_message` per whole message (fragments joined, text
  checked as UTF-8); `on_resume` when the client's socket buffer drained after a pause;
  `on_close` exactly once, when the connection is gone, whatever ended it.
- Pings are answered with pongs; pongs and any other byte count as life.
- Closing handshake (RFC 6455 §7): the side that closes first sends its close frame; the
  gateway answers a client's close with its own and closes the TCP connection (§7.1.1, the
  server closes first); after the gateway's own close it waits CLOSE_WAIT at most for the
  client's answer, then aborts. A protocol error (the codec's close code: 1002, 1007, 1009)
  gets a close frame with that code and the connection closes at once.
- Flow control: above the transport's high-water mark the connection is `paused`; the
  client is not read then (so a client that does not read what it is sent cannot make the
  gateway buffer without bound), and `drain()` waits; `resume_writing` wakes them and calls
  `on_resume`.
- Liveness: one timer per connection, re-armed lazily: `idle_timeout` (nothing read or sent
  for that long) and `ping_interval` as for tunnels (`ws_liveness` decides); both end with
  1001. Draining and reloads call `go_away`/`retire` like tunnels' (the worker's registry).
- A handler that raises is logged and the connection closes with 1011; the worker carries on.

Per connection: this object (slots), its decoder (slots, empty buffers while idle) and the
transport; no task and no future unless a filter awaits `drain()`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

from mypy_extensions import mypyc_attr

from edgeward.http.message import RequestHead
from edgeward.http.outbox import outbox_for
from edgeward.http.tunnel import (
    CLOSE_TEXT,
    ENDED_CLOSED,
    ENDED_CUT,
    ENDED_DEAD,
    ENDED_IDLE,
    ENDED_RELOAD,
    ENDED_RESET,
    PING_PAYLOAD,
    TunnelSettings,
    TunnelStats,
)
from edgeward.http.ws_codec import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Decoder,
    close_frame,
    close_payload,
    frame,
    message_frame,
    valid_close_code,
)
from edgeward.http.ws_liveness import DEAD, PING, idle_due, side_verdict

# After the gateway's close frame, how long the client has to answer with its own before the
# connection is aborted (the `websockets` library's close_timeout is 10 s; this bounds a
# shutdown's wait for a client that never answers to the same).
CLOSE_WAIT: Final = 10.0
# How a connection ended, beside the tunnels' reasons (edgeward_websocket_closed_total).
ENDED_PROTOCOL: Final = "protocol_error"  # the client broke RFC 6455 (1002, 1007, 1009)
ENDED_HANDLER: Final = "handler_error"    # the filter's handler raised (1011)

_OPEN: Final = 0
_CLOSING: Final = 1  # a close frame was sent (or the client's answered): nothing more is sent
_CLOSED: Final = 2   # the connection is gone

log = logging.getLogger("edgeward.websocket")


@mypyc_attr(allow_interpreted_subclasses=True)
class WebSocketHandler:
    """What a filter does with a WebSocket connection it accepted (`Reply.websocket`).
    Every method has a no-op default; all run on the worker's loop and must not block."""

    def on_open(self, ws: WebSocket) -> None:
        """The 101 is out: `ws.send` may be used from now on."""
        return None

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        """A whole message from the client: str for text (valid UTF-8), bytes for binary."""
        return None

    def on_resume(self, ws: WebSocket) -> None:
        """The client's socket buffer drained after a pause (`ws.paused` is false again)."""
        return None

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        """The connection is gone (exactly once): the code and reason of the close frame
        that began the closing handshake (the client's or the gateway's), 1006 when the
        connection dropped without one."""
        return None


class WebSocket:
    """The gateway's side of one accepted WebSocket connection (see the module docstring).

    `request` is the handshake request as the filters left it (consumer, client_cert, path,
    vars). `send` never waits: above the high-water mark `paused` turns true; a producer that
    may outrun the client awaits `drain()` or waits for `on_resume`.
    """

    __slots__ = ("request", "handler", "transport", "decoder", "settings", "stats",
                 "registry", "loop", "state", "_paused", "waiter", "timer",
                 "retiring", "read_at", "sent_at", "pinged_at", "code", "reason", "ended")

    def __init__(self, request: RequestHead, handler: WebSocketHandler,
                 loop: asyncio.AbstractEventLoop, registry: set[WebSocket],
                 settings: TunnelSettings, stats: TunnelStats) -> None:
        self.request = request
        self.handler = handler
        self.loop = loop
        self.registry = registry  # the worker's open tunnels and endpoints (drained)
        self.settings = settings
        self.stats = stats
        self.decoder = Decoder(settings.max_message)
        self.transport: asyncio.Transport | None = None
        self.state = _OPEN
        self._paused = False
        self.waiter: asyncio.Future[None] | None = None  # drain() callers, made on demand
        self.timer: asyncio.TimerHandle | None = None
        self.retiring: asyncio.TimerHandle | None = None  # a reload withdrew the route
        self.read_at = self.sent_at = self.pinged_at = 0.0
        self.code = CLOSE_ABNORMAL  # of the close that began the closing handshake
        self.reason = ""
        self.ended = ENDED_CLOSED   # how it ended, for the metrics

    # the filter's API ------------------------------------------------------------------------
    def send(self, message: str | bytes) -> None:
        """A text (str) or binary (bytes) message; a no-op once closing. Never waits."""
        transport = self.transport
        if self.state != _OPEN or transport is None:
            return
        data = message_frame(message)
        self.stats.bytes_down += len(data)
        self.sent_at = self.loop.time()
        transport.write(data)  # at once, so that `paused` tells what this write did

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with `code` (RFC 6455 §7.4) and `reason`; the client's
        answer (or CLOSE_WAIT) closes the connection. A no-op once closing."""
        if not valid_close_code(code):
            raise ValueError(f"{code} is not a close code an endpoint may send")
        self._close(code, reason)

    @property
    def closed(self) -> bool:
        """Closing or closed: `send` does nothing."""
        return self.state != _OPEN

    @property
    def paused(self) -> bool:
        """The client's socket buffer is above its high-water mark."""
        return self._paused

    async def drain(self) -> None:
        """Return once the connection is not paused (at once if it is not), or closed."""
        if not self._paused or self.state == _CLOSED:
            return
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = self.loop.create_future()
        await asyncio.shield(waiter)

    # the gateway's side ----------------------------------------------------------------------
    def start(self, transport: asyncio.Transport, early: bytes) -> None:
        """Take over the client's transport (the 101 already written); bytes the client sent
        after its handshake are its first frames."""
        self.transport = transport
        self.registry.add(self)
        # The 101 (and anything before it) leaves now: from here writes go straight to the
        # transport, whose high-water mark then says at once when the client lags.
        outbox_for(self.loop).flush()
        transport.set_protocol(self)  # type: ignore[arg-type]  # a protocol by shape
        self.read_at = self.sent_at = self.loop.time()
        try:
            self.handler.on_open(self)
        except Exception:  # noqa: BLE001
            self._handler_failed("on_open")
        if early:
            self.data_received(early)
        if self.state != _CLOSED:
            transport.resume_reading()  # also when closing: the client's close is read
        settings = self.settings
        first = self.read_at + min(settings.idle_timeout, settings.ping_interval)
        if first != math.inf and self.timer is None:
            self.timer = self.loop.call_at(first, self._on_timer)

    def go_away(self, reason: str) -> None:
        """The gateway ends the connection (idle, dead peer, shutdown, reload): 1001."""
        if self.state == _OPEN:
            self.ended = reason
            self._close(CLOSE_GOING_AWAY, CLOSE_TEXT.get(reason, reason))

    def retire(self, delay: float) -> None:
        """The route no longer takes WebSocket (a reload): go away after `delay`."""
        if self.retiring is None and self.state == _OPEN:
            self.retiring = self.loop.call_later(delay, self.go_away, ENDED_RELOAD)

    def abort(self) -> None:
        if self.transport is not None and self.state != _CLOSED:
            if self.state == _CLOSING and self.ended == ENDED_CLOSED:
                self.ended = ENDED_CUT
            self.transport.abort()

    # asyncio protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # never called: the transport was made for the codec this replaced

    def data_received(self, data: bytes) -> None:
        self.read_at = self.loop.time()
        self.stats.bytes_up += len(data)
        decoder = self.decoder
        for opcode, message in decoder.feed(data):
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if self.state == _OPEN:
                    self._deliver(message)
            elif opcode == OP_PING:
                self._pong(message)
            elif opcode == OP_CLOSE:
                assert isinstance(message, bytes)
                self._closed_by_client(message)
            # OP_PONG: proof of life (read_at), nothing else
        error = decoder.error
        if error is not None and self.state != _CLOSED:
            if self.state == _OPEN:
                self.ended = ENDED_PROTOCOL
                self.code, self.reason = error.code, error.reason
                self._send_close(error.code, error.reason)
            self._shut()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == _CLOSED:
            return
        if self.state == _OPEN:
            self.ended = ENDED_RESET if exc is not None else self.ended
        self.state = _CLOSED
        self.transport = None
        for handle in (self.timer, self.retiring):
            if handle is not None:
                handle.cancel()
        self.timer = self.retiring = None
        self.registry.discard(self)
        self.stats.open -= 1
        self.stats.end(self.ended)
        self._wake()
        try:
            self.handler.on_close(self, self.code, self.reason)
        except Exception:  # noqa: BLE001
            log.exception("WebSocket handler %r raised in on_close", self.handler)

    def pause_writing(self) -> None:
        self._paused = True
        self.stats.pauses += 1
        if self.transport is not None and self.state == _OPEN:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.transport is not None and self.state == _OPEN:
            self.transport.resume_reading()
        self._wake()
        if self.state == _OPEN:
            try:
                self.handler.on_resume(self)
            except Exception:  # noqa: BLE001
                self._handler_failed("on_resume")

    # inside ----------------------------------------------------------------------------------
    def _deliver(self, message: str | bytes) -> None:
        try:
            self.handler.on_message(self, message)
        except Exception:  # noqa: BLE001
            self._handler_failed("on_message")

    def _pong(self, payload: str | bytes) -> None:
        transport = self.transport
        if self.state == _OPEN and transport is not None and isinstance(payload, bytes):
            transport.write(frame(OP_PONG, payload))

    def _closed_by_client(self, payload: bytes) -> None:
        """The client's close frame: answered with the same code (§5.5.1), then the server
        closes the TCP connection; or the answer to the gateway's own close."""
        if self.state == _OPEN:
            code, reason = close_payload(payload)  # valid: the decoder checked it
            self.code, self.reason = code, reason
            self.state = _CLOSING
            transport = self.transport
            if transport is not None:
                transport.write(frame(OP_CLOSE, payload[:2]))
        self._shut()

    def _close(self, code: int, reason: str) -> None:
        if self.state != _OPEN:
            return
        self.code, self.reason = code, reason
        self._send_close(code, reason)
        if self.state == _CLOSED:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(CLOSE_WAIT, self.abort)  # the one timer, reused

    def _send_close(self, code: int, reason: str) -> None:
        self.state = _CLOSING
        transport = self.transport
        if transport is not None:
            transport.write(close_frame(code, reason))
            if self._paused:
                transport.resume_reading()  # the client's close must be read

    def _shut(self) -> None:
        """Close the TCP connection after what was written to it."""
        transport = self.transport
        if self.state != _CLOSED and transport is not None:
            self.state = _CLOSING
            transport.close()  # after what was written

    def _handler_failed(self, phase: str) -> None:
        log.exception("WebSocket handler %r raised in %s (%s)", self.handler, phase,
                      self.request.path)
        if self.state == _OPEN:
            self.ended = ENDED_HANDLER
            self._close(CLOSE_INTERNAL_ERROR, "internal error")

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _on_timer(self) -> None:
        """Idle, a ping due, a dead client: what the time says (ws_liveness decides)."""
        self.timer = None
        if self.state != _OPEN:
            return
        now = self.loop.time()
        settings = self.settings
        when = idle_due(settings.idle_timeout, self.read_at, self.sent_at)
        if now >= when:
            self.go_away(ENDED_IDLE)
            return
        verdict, at = side_verdict(now, settings.ping_interval, self.read_at, self.pinged_at)
        if verdict == DEAD:
            self.go_away(ENDED_DEAD)
            return
        if verdict == PING and self.transport is not None:
            self.pinged_at = now
            self.stats.pings += 1
            self.transport.write(frame(OP_PING, PING_PAYLOAD))
        when = min(when, at)
        if when != math.inf:
            self.timer = self.loop.call_at(when, self._on_timer)

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self.state]
        return f"<WebSocket {self.request.path} {state} paused={self._paused}>"


__all__ = ["WebSocket", "WebSocketHandler"]
