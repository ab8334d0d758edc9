"""An HTTP/2 client for tests: the `h2` library's connection over a fake transport (unit tests,
`FakeH2Client`) and raw frame bytes for hand-crafted attacks (`frame`)."""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events

from edgeward.http.h2.limits import H2Limits
from edgeward.http.h2.server import H2Connection
from support.fakes import FakeTransport, Harness, Peer

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"gw.test"),
       (b":path", b"/")]


def client_h2(**kw: Any) -> h2.connection.H2Connection:
    """An `h2` client connection that sends what it is told (invalid heads too)."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False,
                                    validate_inbound_headers=False, **kw)
    conn = h2.connection.H2Connection(cfg)
    conn.initiate_connection()
    return conn


def request(path: str = "/", method: str = "GET", authority: str = "gw.test",
            extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
    head = [(b":method", method.encode()), (b":scheme", b"http"),
            (b":authority", authority.encode()), (b":path", path.encode())]
    return head + (extra or [])


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One raw HTTP/2 frame (RFC 9113 §4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream_id) + payload


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each whole frame in `data`."""
    out = []
    while len(data) >= 9:
        size = int.from_bytes(data[:3], "big")
        if len(data) < 9 + size:
            break
        sid = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        out.append((data[3], data[4], sid, data[9:9 + size]))
        data = data[9 + size:]
    return out


DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, END_HEADERS = 0x1, 0x4


class FakeH2Client:
    """An `H2Connection` on a fake transport, with an `h2` client as its peer."""

    def __init__(self, h: Harness, limits: H2Limits | None = None) -> None:
        self.h = h
        self.conn = H2Connection(h.state, h.loop, limits or H2Limits())
        self.transport = FakeTransport(h.loop, self.conn, ("10.0.0.1", 5555))
        with h.loop.running():
            self.conn.connection_made(self.transport)
        self.peer = Peer(h.loop, self.conn, self.transport)
        self.h2 = client_h2()
        self.read_at = 0
        self.events: list[h2.events.Event] = []
        self.send(b"")
        self.read()

    def send(self, raw: bytes = b"") -> None:
        """What the `h2` client queued (and `raw` after it) goes to the gateway."""
        data = self.h2.data_to_send() + raw
        if data:
            self.peer.send(data)

    def read(self) -> list[h2.events.Event]:
        """The new events from what the gateway wrote (the client's answers are sent)."""
        out: list[h2.events.Event] = []
        while True:
            data = self.transport.data[self.read_at:]
            self.read_at += len(data)
            if not data:
                break
            out.extend(self.h2.receive_data(data))
            self.send()
        self.events.extend(out)
        return out

    def of(self, kind: type, stream_id: int | None = None) -> list[Any]:
        self.read()
        return [e for e in self.events if isinstance(e, kind)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    def goaway(self) -> int | None:
        found = self.of(h2.events.ConnectionTerminated)
        return int(found[-1].error_code) if found else None

    def response(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes, bool]:
        """(head, body so far, ended) of a stream."""
        heads = self.of(h2.events.ResponseReceived, stream_id)
        body = b"".join(e.data for e in self.of(h2.events.DataReceived, stream_id))
        ended = bool(self.of(h2.events.StreamEnded, stream_id))
        return (dict(heads[0].headers) if heads else {}), body, ended
