"""The filter API: what a filter is, what it may return, and the order filters run in.

A route's filters form a chain (Envoy's model). For each request the exchange calls, in order,
every filter's `on_request`; each returns `None` to let the request go on, a `Reply` to answer
it itself (the rest of the chain and the upstream are skipped), or an awaitable (an
`async def on_request`, or any awaitable a sync `on_request` returns) when it must wait: the
chain stops there and resumes with the awaitable's result. A filter that never waits costs a
plain call: no task, no future.

Then, if the request was forwarded (or a filter replied), the response phases run over the
filters that let the request through, last to first: `on_response` may change the status and
headers, `on_response_body` the body as it streams. Last, `on_done` tells each of those
filters the exchange is over (release what `on_request` took). Request body phases run as
the body arrives; trailers are read and changed in the body phases' last call (`end` true),
on `req.trailers` and `resp.trailers`. Only the phases a filter overrides are called.

A filter that raises (or returns something else) gets the request a 500 with code
`filter_error`; the worker and the other requests carry on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar, Final, Union

from mypy_extensions import mypyc_attr

from edgeward.http.errors import REASONS
from edgeward.http.fields import Headers, check_name, check_value
from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.ws_endpoint import WebSocket, WebSocketHandler

Request = RequestHead
Response = ResponseHead
RequestResult = Union["Reply", None, Awaitable[Union["Reply", None]]]

# Where a filter runs in a route's chain, whatever its place in the route's `filters:` list
# (filters with the same order keep the list's order). Built-ins that must come first do,
# so, for example, a CORS preflight is answered before any authentication sees it. Response
# phases run in the opposite order: compression (ORDER_COMPRESS) sees the response after the
# header filters and users' filters changed it. Faults and mirrors come after users' filters
# (what is aborted or copied is the request as it would be forwarded); a route's `redirect:`
# or `respond:` (ORDER_RESPOND) ends the chain.
ORDER_CORS: Final = 100
ORDER_IP: Final = 200
ORDER_AUTH: Final = 300
ORDER_RATE_LIMIT: Final = 400
ORDER_CONCURRENCY: Final = 500
ORDER_CACHE: Final = 600
ORDER_COMPRESS: Final = 650
ORDER_REWRITE: Final = 700
ORDER_USER: Final = 800
ORDER_FAULT: Final = 850
ORDER_MIRROR: Final = 870
ORDER_SPLIT: Final = 900
ORDER_RESPOND: Final = 1000


@mypyc_attr(allow_interpreted_subclasses=True)
class Filter:
    """Base of every filter; override the phases you need. See the module docstring.

    `name` is the filter's name in the config (set when the config is compiled); `order`
    places it in the chain (ORDER_USER for users' filters).
    """

    name: str = ""
    order: ClassVar[int] = ORDER_USER

    def on_request(self, req: Request) -> RequestResult:
        return None

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        """Each part of the request body as it arrives (`end` with the last); returns the
        bytes to send on (b"" holds them back), or a Reply."""
        return data

    def on_response(self, req: Request, resp: Response) -> None:
        return None

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        """Each part of the response body; returns the bytes to send on. A filter that
        changes the body's length sets `resp.body_length = STREAMED` in `on_response`."""
        return data

    def on_done(self, req: Request, resp: Response | None) -> None:
        """The exchange is over (`resp` is what was sent, None if nothing was)."""
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class ReplyOutput:
    """Where a streamed reply writes its body (implemented by the exchange's side)."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Stop producing and return: the client went away (the task is cancelled too, but
        a library that swallows a cancellation would keep it looping), or the gateway is
        draining (returning ends the response, and the client reconnects elsewhere)."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Returns when the client reads again (at once unless its connection is paused)."""
        raise NotImplementedError


def _fields(headers: Mapping[str, str] | Sequence[tuple[str, str]] | None
            ) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(check_name(n), check_value(v)) for n, v in pairs]


class Reply:
    """A response the gateway makes itself: any status, headers and body.

    `Reply.error(status, code, detail)` makes the gateway's error document (the same as its
    own refusals: RFC 9457 `application/problem+json` with `type`, `title`, `status`,
    `detail`, `code`, `request_id` and `trace_id`); the code is counted and logged as the
    exchange's error code. Every reply carries `Date` unless its headers set one.

    `stream`, when set, makes the body a stream of unknown length (chunked on HTTP/1.1): once
    the head is sent the exchange runs `stream(out)` as a task; it writes with `out.write`,
    awaits `out.drain()` to respect the client's flow control, and the response ends when it
    returns (or is reset if it raises). The task is cancelled when the client goes away, and
    `out.closed` turns true.
    Server-sent events (docs/devices.md) use it; `body` is ignored then.

    `Reply.websocket(handler)` accepts a WebSocket handshake: the gateway answers 101 and
    talks WebSocket with the client itself, `handler` (a `WebSocketHandler`) getting its
    messages (docs/websocket.md).
    """

    __slots__ = ("status", "fields", "body", "code", "detail", "head", "stream", "handler",
                 "subprotocol")

    def __init__(self, status: int, body: bytes | str = b"",
                 headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None) -> None:
        if not 200 <= status <= 599:
            raise ValueError(f"a reply's status must be 200-599, got {status}")
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.fields = _fields(headers)
        self.code: str | None = None    # an error document's code
        self.detail: str | None = None  # ... and its message
        # A head made ready beforehand (a cache's stored response, its wire kept): sent in
        # place of one made from `status` and `fields`.
        self.head: ResponseHead | None = None
        self.stream: Callable[[ReplyOutput], Awaitable[None]] | None = None
        # Reply.websocket: the handler of the connection, and the subprotocol chosen.
        self.handler: WebSocketHandler | None = None
        self.subprotocol: str | None = None

    @staticmethod
    def error(status: int, code: str, detail: str | None = None,
              headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None) -> Reply:
        reply = Reply(status, b"", headers)
        reply.code = code
        reply.detail = detail or REASONS.get(status, b"Error").decode()
        return reply

    @staticmethod
    def websocket(handler: WebSocketHandler, *, subprotocol: str | None = None,
                  headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
                  ) -> Reply:
        """Accept the request's WebSocket handshake: a 101 with the right
        Sec-WebSocket-Accept, `subprotocol` (one the client offered) and `headers`, then
        `handler` talks to the client (`WebSocketHandler`). A request that is not a handshake
        (or came over HTTP/2) gets 400 websocket_handshake_required instead; a subprotocol
        the client did not offer, 400 websocket_subprotocol_not_offered."""
        if not isinstance(handler, WebSocketHandler):
            raise TypeError(f"Reply.websocket takes a WebSocketHandler, got {handler!r}")
        reply = Reply(200, b"", headers)
        reply.status = 101
        reply.handler = handler
        reply.subprotocol = subprotocol
        return reply

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.code or ''}>"


__all__ = ["Filter", "Headers", "Reply", "ReplyOutput", "Request", "RequestResult", "Response",
           "WebSocket", "WebSocketHandler"]
