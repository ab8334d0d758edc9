"""Which codec serves a new client connection: HTTP/2 or HTTP/1.1.

On a TLS listener the handshake decides (ALPN `h2`; anything else, or no ALPN, is HTTP/1.1).
On a plain listener the first bytes do: a connection that opens with the HTTP/2 preface
(`PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`, RFC 9113 §3.4, "prior knowledge") is h2c, any
other is HTTP/1.1 (whose codec still refuses `Upgrade: h2c`). The chosen protocol takes the
transport over (`set_protocol`) with the bytes read so far. A client that sends nothing is
closed after server.header_timeout, as an HTTP/1.1 client that sends no head.

With `server.http2.enabled: false` the listener makes HTTP/1.1 connections directly
(`connection_factory`), and this costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from edgeward.http.h1.server import H1Connection
from edgeward.http.h2.limits import H2Limits
from edgeward.http.h2.server import H2Connection
from edgeward.http.listener import ListenerState

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ALPN_H2: Final = "h2"

Protocol = H1Connection | H2Connection


class FirstBytes:
    """A connection whose protocol is not known yet (an asyncio protocol by shape)."""

    __slots__ = ("state", "loop", "limits", "transport", "seen", "timer")

    def __init__(self, state: ListenerState, loop: asyncio.AbstractEventLoop,
                 limits: H2Limits | None) -> None:
        self.state = state
        self.loop = loop
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.seen = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        state = self.state
        limit = state.settings.max_connections
        if limit and len(state.connections) >= limit:
            state.refused_connections += 1
            self.transport = None
            tr.abort()
            return
        state.connections.add(self)  # counted, capped and drained from its accept on
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            self._switch(alpn == ALPN_H2)
            return
        if self.limits is None:
            self._switch(False)  # a plain listener whose HTTP/2 was turned off meanwhile
            return
        self.timer = self.loop.call_later(self.state.settings.header_timeout, tr.close)

    def data_received(self, data: bytes) -> None:
        seen = self.seen + data if self.seen else data
        if len(seen) < len(PREFACE) and PREFACE.startswith(seen):
            self.seen = seen  # a preface cut short by the network: wait for the rest
            return
        self.seen = seen
        self._switch(seen.startswith(PREFACE))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.state.connections.discard(self)
        self.transport = None

    def close_if_idle(self) -> bool:
        """For draining: the bytes a client sent before are still answered (the protocol
        they choose sees the listener draining); one that sends none is closed by its
        timer or aborted at the end of the drain."""
        return False

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def _switch(self, h2: bool) -> None:
        self._stop_timer()
        self.state.connections.discard(self)
        transport = self.transport
        if transport is None:
            return
        # A TLS client that negotiated h2 gets it even if a reload turned HTTP/2 off since
        # the handshake contexts were made (default limits then).
        proto: Protocol = (H2Connection(self.state, self.loop, self.limits or H2Limits()) if h2
                           else H1Connection(self.state, self.loop))
        transport.set_protocol(proto)  # type: ignore[arg-type]  # a protocol by shape
        proto.connection_made(transport)
        seen, self.seen = self.seen, b""
        if seen and proto.transport is not None:
            proto.data_received(seen)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def connection_factory(state: ListenerState, loop: asyncio.AbstractEventLoop,
                       tls: bool) -> Callable[[], object]:
    """The protocol factory of a listener: HTTP/1.1 connections on a plain listener without
    HTTP/2, else protocol selection (settings read per connection: reloads apply)."""
    def make() -> object:
        limits = state.settings.http2
        if limits is None and not tls:
            return H1Connection(state, loop)
        return FirstBytes(state, loop, limits)
    return make
