"""WsEcho: the gateway answers WebSocket handshakes itself and echoes every message.

A filter that accepts a handshake returns `Reply.websocket(handler)` from `on_request`; the
gateway answers 101 and calls the handler per message (docs/websocket.md, "Connections a
filter accepts"). Here every message goes back as it came (text as text, binary as binary).
The route's other filters (authentication, rate limits) run before it, as for any request.

    routes:
      - match: {path_prefix: /echo}
        respond: {status: 404}          # what a request that is not a handshake gets
        websocket: {idle_timeout: 5m}
        filters: [{python: "ws_echo:WsEcho"}]

`benchmarks/ws_local_echo.py` and the Autobahn run in `examples/filters/ws_echo.yaml` use it.
"""

from __future__ import annotations

from edgeward.filters import Filter, Reply, Request, WebSocket, WebSocketHandler


class Echo(WebSocketHandler):
    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        ws.send(message)


_ECHO = Echo()  # keeps no per-connection state: one handler serves every connection


class WsEcho(Filter):
    def on_request(self, req: Request) -> Reply | None:
        return Reply.websocket(_ECHO)
