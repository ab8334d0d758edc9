"""A WebSocket tunnel: after a 101, the client's and the upstream's connections relay bytes.

The server codec hands over its client transport and the client codec its upstream transport
(never to be pooled again); each gets a `TunnelSide` as its protocol. What one side reads is
written to the other unchanged; frames are not parsed, only their boundaries followed
(`FrameCursor`) so that the gateway's own close frames go between frames.

- Backpressure, both ways: when one side's write buffer passes its high-water mark
  (`pause_writing`), the other side stops being read until the buffer drains
  (`resume_writing`). Bytes held per direction stay below the high mark plus one read.
- Half-close: an EOF read from one side is passed on as an EOF (`write_eof`) to the other;
  when both sides have sent theirs, both connections close. A reset on one side aborts the
  other; a plain close of one side closes the other once what was written to it is sent.
- Going away (idle timeout, dead peer, shutdown, a reload that withdrew the route): the
  gateway writes a close frame (1001) into both directions at the next frame boundary of
  each — masked toward the upstream, as a client must (RFC 6455 §5.3) — drops whatever
  either peer sends after it, and closes both connections once both close frames are out.
  A peer stuck in the middle of a frame for longer than GOING_AWAY_GRACE is cut.
- Idle timeout: no byte in either direction for `idle_timeout` ends the tunnel as above.
- Pings (only with `ping_interval`): a side silent for `ping_interval` gets a ping frame from
  the gateway (masked toward the upstream), at a frame boundary of what goes to it; a side
  that then sends nothing for another `ping_interval` is dead, and the tunnel goes away
  (reason `dead_peer`). Its pong is relayed to the other peer as an unsolicited pong, which
  RFC 6455 §5.5.3 allows any endpoint to receive (and ignore).
The decisions on time are `edgeward.http.ws_liveness`'s; this module does the I/O.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final

from edgeward.http.outbox import Outbox, outbox_for
from edgeward.http.ws_frames import (
    CLOSE_GOING_AWAY,
    OP_PING,
    FrameCursor,
    close_frame,
    control_frame,
)
from edgeward.http.ws_liveness import DEAD, PING, idle_due, side_verdict

# After the gateway's close frames are due, how long a peer may take to finish the frame it is
# in the middle of; then both connections are aborted. Two seconds carries a 64 KiB frame
# over a 256 kbit/s link, and bounds a shutdown's wait for a stalled sender.
GOING_AWAY_GRACE: Final = 2.0
# nginx proxy_read_timeout 60 s, the usual precedent for WebSocket tunnels behind nginx: an
# application that keeps a connection open longer without a message pings (most clients
# and servers do, e.g. websockets every 20 s).
DEFAULT_IDLE_TIMEOUT: Final = 60.0
# The largest message (all its fragments) a WebSocket connection the gateway ends itself
# accepts; beyond, close 1009. The `websockets` library's max_size default, 1 MiB.
DEFAULT_MAX_MESSAGE: Final = 1024 * 1024

# How a tunnel ended (the `reason` label of edgeward_websocket_closed_total).
ENDED_CLOSED: Final = "closed"              # a peer closed (after its close handshake, usually)
ENDED_RESET: Final = "reset"                # a peer's connection was reset
ENDED_IDLE: Final = "idle_timeout"          # nothing moved for idle_timeout: 1001 both ways
ENDED_SHUTDOWN: Final = "shutdown"          # the worker drained: 1001 both ways
ENDED_CUT: Final = "cut"                    # a peer was mid-frame past GOING_AWAY_GRACE
ENDED_DEAD: Final = "dead_peer"             # a peer did not answer a ping: 1001 both ways
ENDED_RELOAD: Final = "reload"              # a reload took its route's WebSocket away: 1001
# The reason text of the gateway's close frames, by how the tunnel ends.
CLOSE_TEXT: Final = {ENDED_IDLE: "idle timeout", ENDED_SHUTDOWN: "gateway shutting down",
                     ENDED_DEAD: "peer did not answer a ping",
                     ENDED_RELOAD: "route withdrawn by a reload"}
# The payload of the gateway's pings (any pong answering them carries it back).
PING_PAYLOAD: Final = b"edgeward"


class TunnelSettings:
    """A route's WebSocket settings, compiled from its `websocket:` section."""

    __slots__ = ("idle_timeout", "max_tunnels", "ping_interval", "max_message")

    def __init__(self, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_tunnels: int | None = None, ping_interval: float = math.inf,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.idle_timeout = idle_timeout  # math.inf: none
        self.max_tunnels = max_tunnels  # open at once per worker; None: no limit
        self.ping_interval = ping_interval  # math.inf: the gateway never pings
        # Largest message a connection the gateway ends itself takes (tunnels relay any).
        self.max_message = max_message


class TunnelStats:
    """One route's tunnels in one worker: open now, bytes relayed, pauses, how they ended.
    Kept for the worker's life (a reload does not reset the open count)."""

    __slots__ = ("route", "open", "bytes_up", "bytes_down", "pauses", "pings", "ended")

    def __init__(self, route: str = "") -> None:
        self.route = route    # the route's name
        self.open = 0         # open tunnels, and handshakes admitted that may become one
        self.bytes_up = 0     # client to upstream
        self.bytes_down = 0   # upstream to client
        self.pauses = 0       # times one side stopped being read (the other's buffer full)
        self.pings = 0        # pings the gateway sent (ping_interval)
        self.ended: dict[str, int] = {}  # closed tunnels by reason

    def end(self, reason: str) -> None:
        self.ended[reason] = self.ended.get(reason, 0) + 1


class TunnelSide:
    """One connection of a tunnel (an asyncio protocol by shape: asyncio calls it by name).
    Its cursor follows the frames it reads, which go to its peer."""

    __slots__ = ("tunnel", "transport", "peer", "cursor", "upstream", "eof", "lost",
                 "close_due", "silenced", "inject", "read_at", "pinged_at")

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport, upstream: bool) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.peer: TunnelSide = self
        self.cursor = FrameCursor()
        self.upstream = upstream    # this side is the upstream's connection
        self.eof = False            # the peer of this connection sent its EOF
        self.lost = False           # the connection is closed
        self.close_due = False      # a close frame waits for the next boundary of our reads
        self.silenced = False       # our close frame went out: what we read is dropped
        self.inject = b""           # the gateway's frames waiting for our next boundary
        self.read_at = 0.0          # when a byte was last read from this side
        self.pinged_at = 0.0        # when the gateway last pinged this side (0: never)

    # asyncio protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # never called: the transport was made for the codec this side replaced

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        self.read_at = tunnel.loop.time()
        if self.silenced:
            return
        if self.close_due or self.inject:
            self._relay_to_boundary(data)
            return
        self._relay(data)

    def _relay(self, data: bytes) -> None:
        tunnel = self.tunnel
        self.cursor.advance(data)
        if self.upstream:
            tunnel.stats.bytes_down += len(data)
        else:
            tunnel.stats.bytes_up += len(data)
        tunnel.outbox.write(self.peer.transport, data)

    def eof_received(self) -> bool | None:
        self.eof = True
        tunnel = self.tunnel
        if self.close_due:
            self.close_due = False  # no boundary will come: the peer gets the EOF instead
            self.silenced = True
            tunnel.check_gone_away()
        peer = self.peer
        if peer.eof:
            tunnel.close_both()
        elif not peer.lost and peer.transport.can_write_eof():
            tunnel.outbox.flush()  # what was relayed before goes first
            peer.transport.write_eof()
        return True  # keep writing to this side until its peer is done too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.tunnel.side_lost(self, exc)

    def pause_writing(self) -> None:
        peer = self.peer
        if not peer.lost:
            self.tunnel.stats.pauses += 1
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if not peer.lost:
            peer.transport.resume_reading()

    # going away ------------------------------------------------------------------------------
    def send_close(self, code: int, reason: str) -> None:
        """Write the gateway's close frame into what goes to our peer, at a frame boundary
        (now, if the reads so far end on one)."""
        if self.silenced:
            return
        if self.lost or self.eof:
            self.silenced = True  # our peer got (or gets) an EOF or a close instead
            self.tunnel.check_gone_away()
        elif self.cursor.at_boundary:
            self._close_now(code, reason)
        else:
            self.close_due = True

    def send_control(self, frame: bytes) -> None:
        """Write the gateway's control `frame` (a ping) into what goes to our peer, at a
        frame boundary; what we read keeps flowing after it."""
        if self.silenced or self.lost:
            return
        if self.cursor.at_boundary and not self.inject:
            self.tunnel.outbox.write(self.peer.transport, frame)
        else:
            self.inject += frame

    def _relay_to_boundary(self, data: bytes) -> None:
        """Relay up to the first frame boundary in `data`; there, the gateway's own frames
        go out (and a due close ends our relaying); the rest is relayed as usual."""
        cursor = self.cursor
        taken = cursor.advance(data, True)
        if taken:
            self._count(taken)
            self.tunnel.outbox.write(self.peer.transport, data[:taken] if taken < len(data)
                                     else data)
        if not cursor.at_boundary:
            return
        if self.inject:
            self.tunnel.outbox.write(self.peer.transport, self.inject)
            self.inject = b""
        if self.close_due:
            tunnel = self.tunnel
            self._close_now(tunnel.close_code, tunnel.close_reason)
        elif taken < len(data):
            self._relay(data[taken:])

    def _count(self, n: int) -> None:
        if self.upstream:
            self.tunnel.stats.bytes_down += n
        else:
            self.tunnel.stats.bytes_up += n

    def _close_now(self, code: int, reason: str) -> None:
        self.close_due = False
        self.silenced = True
        peer = self.peer
        if not peer.lost:
            # Toward the upstream the gateway speaks as a client: masked (RFC 6455 §5.3).
            self.tunnel.outbox.write(peer.transport, self.inject + close_frame(
                code, reason, masked=not self.upstream))
        self.inject = b""
        self.tunnel.check_gone_away()

    def __repr__(self) -> str:
        return (f"<TunnelSide {'upstream' if self.upstream else 'client'} eof={self.eof} "
                f"lost={self.lost} silenced={self.silenced}>")


class Tunnel:
    """Both sides of one tunnel, its timers and its accounting."""

    __slots__ = ("loop", "registry", "client", "upstream", "settings", "stats", "outbox",
                 "timer", "grace", "retiring", "close_code", "close_reason", "reason")

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: set[Tunnel],
                 client: asyncio.Transport, upstream: asyncio.Transport,
                 settings: TunnelSettings, stats: TunnelStats) -> None:
        self.loop = loop
        self.registry = registry  # the worker's open tunnels (drained on shutdown)
        self.client = TunnelSide(self, client, upstream=False)
        self.upstream = TunnelSide(self, upstream, upstream=True)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.settings = settings
        self.stats = stats
        self.outbox: Outbox = outbox_for(loop)
        self.client.read_at = self.upstream.read_at = loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.grace: asyncio.TimerHandle | None = None
        self.retiring: asyncio.TimerHandle | None = None  # a reload withdrew the route
        self.close_code = 0      # set when the gateway ends the tunnel
        self.close_reason = ""
        self.reason = ENDED_CLOSED  # how it ended, for the metrics

    def start(self, client_early: bytes, upstream_early: bytes) -> None:
        """Take over both transports; relay what each peer sent before the switch."""
        self.registry.add(self)
        client, upstream = self.client, self.upstream
        client.transport.set_protocol(client)  # type: ignore[arg-type]  # a protocol by shape
        upstream.transport.set_protocol(upstream)  # type: ignore[arg-type]
        if upstream_early:
            upstream.data_received(upstream_early)
        if client_early:
            client.data_received(client_early)
        client.transport.resume_reading()
        upstream.transport.resume_reading()
        settings = self.settings
        first = client.read_at + min(settings.idle_timeout, settings.ping_interval)
        if first != math.inf:
            self.timer = self.loop.call_at(first, self._on_timer)

    def go_away(self, reason: str) -> None:
        """End the tunnel from the gateway's side (`reason`: ENDED_IDLE or ENDED_SHUTDOWN):
        close frames 1001 both ways (at frame boundaries), then close; cut after
        GOING_AWAY_GRACE at the latest."""
        if self.close_code or self.client.lost or self.upstream.lost:
            return  # already ending
        text = CLOSE_TEXT.get(reason, reason)
        self.close_code, self.close_reason, self.reason = CLOSE_GOING_AWAY, text, reason
        self.grace = self.loop.call_later(GOING_AWAY_GRACE, self.abort)
        self.client.send_close(CLOSE_GOING_AWAY, text)
        self.upstream.send_close(CLOSE_GOING_AWAY, text)

    def retire(self, delay: float) -> None:
        """The route no longer takes WebSocket (a reload): go away after `delay` (the drain
        timeout), unless the peers end the tunnel first."""
        if self.retiring is None and not self.close_code:
            self.retiring = self.loop.call_later(delay, self.go_away, ENDED_RELOAD)

    def check_gone_away(self) -> None:
        """Both close frames are out (or could not be): close both connections."""
        if self.client.silenced and self.upstream.silenced:
            self.close_both()

    def close_both(self) -> None:
        for side in (self.client, self.upstream):
            if not side.lost:
                self.outbox.close(side.transport)

    def abort(self) -> None:
        self.grace = None
        if self.close_code:
            self.reason = ENDED_CUT
        for side in (self.client, self.upstream):
            if not side.lost:
                side.transport.abort()

    def side_lost(self, side: TunnelSide, exc: Exception | None) -> None:
        peer = side.peer
        if not peer.lost:
            if exc is not None:
                if not self.close_code:
                    self.reason = ENDED_RESET
                peer.transport.abort()  # a reset on one side resets the other
            else:
                self.outbox.close(peer.transport)  # after what was relayed to it
            return
        self._finish()

    def _on_timer(self) -> None:
        """Idle, a ping due, a dead side: what the time says (ws_liveness decides)."""
        self.timer = None
        if self.close_code:
            return
        now = self.loop.time()
        settings = self.settings
        client, upstream = self.client, self.upstream
        when = idle_due(settings.idle_timeout, client.read_at, upstream.read_at)
        if now >= when:
            self.go_away(ENDED_IDLE)
            return
        for side in (client, upstream):
            verdict, at = side_verdict(now, settings.ping_interval, side.read_at,
                                       side.pinged_at)
            if verdict == DEAD:
                self.go_away(ENDED_DEAD)
                return
            if verdict == PING:
                side.pinged_at = now
                self.stats.pings += 1
                # Toward the upstream the gateway speaks as a client: masked.
                side.peer.send_control(control_frame(OP_PING, PING_PAYLOAD,
                                                     masked=side.upstream))
            if at < when:
                when = at
        if when != math.inf:
            self.timer = self.loop.call_at(when, self._on_timer)

    def _finish(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        if self.retiring is not None:
            self.retiring.cancel()
            self.retiring = None
        self.registry.discard(self)
        self.stats.open -= 1
        self.stats.end(self.reason)

    def __repr__(self) -> str:
        return f"<Tunnel {self.client!r} {self.upstream!r} reason={self.reason}>"
