"""`H2Origin`: a scripted HTTP/2 (h2c prior knowledge) origin on libnghttp2 (ngh2), in a thread
of its own, for the upstream HTTP/2 codec's end-to-end tests.

Every request is answered once its body has ended: 200, `x-conn: N` (the connection's number,
from 1), `x-stream: ID`, the body `PATH <request body>`, and the trailer `x-trailer: yes`.
Paths that do more:
- `/hold`: answered only once `release()` is called (requests in flight at once);
- `/big/N`: N MiB of body; how much the origin could send so far is in `big_sent`;
- `/slow-read`: the request body is not acknowledged (no WINDOW_UPDATE) until `let_read()`;
- `/reset`: the stream is reset (INTERNAL_ERROR) instead of answered.
`max_streams` is the SETTINGS_MAX_CONCURRENT_STREAMS it announces; `goaway_on` names the
request (by 1-based count on its connection) at which a connection sends GOAWAY with the
previous stream as the last one processed, leaving that request unanswered.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ngh2

MIB = 1024 * 1024


class _Conn(asyncio.Protocol):
    def __init__(self, origin: H2Origin) -> None:
        self.origin = origin
        origin.connections += 1
        self.number = origin.connections
        self.h2 = ngh2.Connection(ngh2.Role.SERVER, ngh2.Configuration(auto_window_update=False))
        self.requests: dict[int, dict[str, Any]] = {}
        self.count = 0
        self.goaway_sent = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection({ngh2.Setting.MAX_CONCURRENT_STREAMS:
                                     self.origin.max_streams})
        self.flush()

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            out = self.h2.data_to_send()
            if out:
                self.transport.write(out)

    def data_received(self, data: bytes) -> None:
        self.h2.receive_data(data)
        for ev in self.h2.events():
            if isinstance(ev, ngh2.RequestReceived):
                self._request(ev.stream_id, dict(ev.headers), ev.end_stream)
            elif isinstance(ev, ngh2.DataReceived):
                req = self.requests.get(ev.stream_id)
                if req is not None:
                    req["body"].append(ev.data)
                    if req["path"] == b"/slow-read" and not self.origin.reading.is_set():
                        req["unacked"] += len(ev.data)
                    else:
                        self.h2.acknowledge_received_data(len(ev.data), ev.stream_id)
                    if ev.end_stream:
                        self._answer(ev.stream_id)
            elif isinstance(ev, ngh2.TrailersReceived):
                self._answer(ev.stream_id)
            elif isinstance(ev, ngh2.WindowUpdated):
                self._note_big()
            elif isinstance(ev, ngh2.StreamReset):
                self.origin.resets += 1
        self.flush()

    def _request(self, sid: int, headers: dict[bytes, bytes], end: bool) -> None:
        self.count += 1
        if self.origin.goaway_on == self.count and not self.goaway_sent:
            self.goaway_sent = True
            self.h2.send_goaway(0, last_stream_id=sid - 2)
            return
        self.requests[sid] = {"path": headers[b":path"], "body": [], "unacked": 0,
                              "method": headers[b":method"]}
        if end:
            self._answer(sid)

    def _answer(self, sid: int) -> None:
        req = self.requests[sid]
        path = req["path"]
        if path == b"/reset":
            self.h2.reset_stream(sid, 2)  # INTERNAL_ERROR, before any answer
            return
        if path == b"/hold" and not self.origin.released.is_set():
            self.origin.held.append((self, sid))
            return
        self.respond(sid)

    def respond(self, sid: int) -> None:
        req = self.requests[sid]
        path: bytes = req["path"]
        self.origin.paths.append(path.decode())
        fields = [(b":status", b"200"), (b"x-conn", str(self.number).encode()),
                  (b"x-stream", str(sid).encode())]
        self.h2.send_response(sid, fields)
        if path.startswith(b"/big/"):
            size = int(path[5:]) * MIB
            self.h2.send_data(sid, b"b" * size, end_stream=True)
            req["big"] = size
            self.origin.big = (self, sid)
        else:
            self.h2.send_data(sid, path + b" " + b"".join(req["body"]))
            self.h2.send_trailers(sid, [(b"x-trailer", b"yes")])
        self.flush()
        self._note_big()

    def _note_big(self) -> None:
        big = self.origin.big
        if big is not None and big[0] is self:
            sid = big[1]
            try:
                queued = self.h2.queued_body_size(sid)
            except ngh2.NGH2Error:
                queued = 0
            self.origin.big_sent = self.requests[sid]["big"] - queued

    def ack_all(self) -> None:
        for sid, req in self.requests.items():
            if req["unacked"]:
                try:
                    self.h2.acknowledge_received_data(req["unacked"], sid)
                except (ngh2.NGH2Error, ValueError):
                    pass
                req["unacked"] = 0
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.origin.closed += 1


class H2Origin:
    def __init__(self, max_streams: int = 100, goaway_on: int | None = None) -> None:
        self.max_streams = max_streams
        self.goaway_on = goaway_on
        self.connections = 0
        self.closed = 0
        self.resets = 0
        self.paths: list[str] = []
        self.held: list[tuple[_Conn, int]] = []
        self.big: tuple[_Conn, int] | None = None
        self.big_sent = 0
        self.loop = asyncio.new_event_loop()
        self.released = threading.Event()
        self.reading = threading.Event()
        self._conns: list[_Conn] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _factory(self) -> _Conn:
        conn = _Conn(self)
        self._conns.append(conn)
        return conn

    def __enter__(self) -> H2Origin:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(self._factory, "127.0.0.1", 0), self.loop).result(5)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            for conn in self._conns:
                if conn.transport is not None:
                    conn.transport.abort()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def _in_loop(self, fn: Any) -> None:
        async def run() -> None:
            fn()
        asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def release(self) -> None:
        """Answer the /hold requests waiting, and the later ones at once."""
        def go() -> None:
            self.released.set()
            held, self.held[:] = list(self.held), []
            for conn, sid in held:
                conn.respond(sid)
        self._in_loop(go)

    def let_read(self) -> None:
        def go() -> None:
            self.reading.set()
            for conn in self._conns:
                conn.ack_all()
        self._in_loop(go)
