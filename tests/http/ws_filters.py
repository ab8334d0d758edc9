"""User filters that accept WebSocket handshakes themselves, for the end-to-end tests
(`{python: "tests.http.ws_filters:EchoFilter"}` with the repository on PYTHONPATH).

EchoFilter echoes every message; a few text messages are commands instead:
- `raise`: the handler raises (the gateway closes with 1011);
- `close CODE REASON`: the handler closes with that code and reason;
- `flood N`: the handler sends N binary messages of 1 MiB, respecting `paused` (it stops
  while paused and goes on in `on_resume`), then the text `done`;
- `stats`: a JSON text: the request's path and consumer, the subprotocol offered, whether
  `paused` was ever seen true, how many times `on_resume` ran.
"""

from __future__ import annotations

import json

from edgeward.filters import Filter, Reply, Request, WebSocket, WebSocketHandler

MIB = 1024 * 1024


class Echo(WebSocketHandler):
    def __init__(self) -> None:
        self.left = 0           # flood messages still to send
        self.paused_seen = False
        self.resumes = 0

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        if isinstance(message, str):
            if message == "raise":
                raise RuntimeError("the test handler fails on purpose")
            if message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                ws.close(int(code), reason)
                return
            if message.startswith("flood "):
                self.left = int(message.split()[1])
                self._flood(ws)
                return
            if message == "stats":
                consumer = ws.request.consumer
                ws.send(json.dumps({
                    "path": ws.request.path, "consumer": consumer.name if consumer else None,
                    "paused_seen": self.paused_seen, "resumes": self.resumes}))
                return
        ws.send(message)

    def on_resume(self, ws: WebSocket) -> None:
        self.resumes += 1
        self._flood(ws)

    def _flood(self, ws: WebSocket) -> None:
        while self.left and not ws.paused:
            self.left -= 1
            ws.send(b"\xab" * MIB)
            if not self.left:
                ws.send("done")
        if ws.paused:
            self.paused_seen = True


class EchoFilter(Filter):
    """Accepts every WebSocket handshake that reaches it; `proto` if the client offers it."""

    def on_request(self, req: Request) -> Reply | None:
        offered = req.headers.get("sec-websocket-protocol") or ""
        chosen = "echo.v1" if "echo.v1" in offered else None
        if "pick-unoffered" in req.path:
            chosen = "not-offered"
        return Reply.websocket(Echo(), subprotocol=chosen, headers={"x-echo": "1"})
