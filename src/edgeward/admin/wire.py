"""The admin API on the gateway's own HTTP/1.1 codec: one `AdminExchange` per request.

The admin listener is an `H1Connection` listener like the data plane's, with the same framing
rules, limits, pipelining, head timeout and request ids; only what a request turns into
differs. An `AdminExchange` asks the server to check the head first (route, method, the
cross-site guard, the bearer token: `AdminServer.check`), so a refused request is answered
before its body is read (and the connection closed, since the body is left unread); then it
reads the body up to `max_body` and hands the whole request to the server's async dispatch.

Not the data plane: the admin API serves people and scrapers, so clarity wins over the last
microsecond; the bounds (head, body, pipelined queue, head and idle time, connections) apply.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from edgeward.admin.config import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD,
)
from edgeward.http.date import DATE, http_date
from edgeward.http.errors import PROBLEM_TYPE, title
from edgeward.http.fields import Headers
from edgeward.http.listener import ListenerSettings
from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.stream import HandlerFactory, ServerStream, StreamHandler, Trailers

JSON_TYPE: Final = "application/json"
PROBLEM_JSON_TYPE: Final = "application/problem+json"
# The admin API's own names for two codec limits (released before the shared codec served it).
ADMIN_CODES: Final = {"header_too_large": "headers_too_large",
                      "payload_too_large": "body_too_large"}
# The admin head must arrive within this (HAProxy's `timeout http-request 10s`, as the data
# plane's default); the body's parts within this of each other.
HEAD_TIMEOUT: Final = 10.0
# Pipelined admin requests parsed ahead of their turn (a dashboard sends one at a time).
MAX_QUEUED_REQUESTS: Final = 8


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    max_head: int = DEFAULT_MAX_HEAD
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    head_timeout: float = HEAD_TIMEOUT  # also bounds each wait for more of a body

    def listener(self) -> ListenerSettings:
        return ListenerSettings(
            header_timeout=self.head_timeout, idle_timeout=self.idle_timeout,
            body_timeout=self.head_timeout, max_header_bytes=self.max_head,
            max_request_line=self.max_head, max_pipelined=MAX_QUEUED_REQUESTS,
            max_connections=self.max_connections, codes=ADMIN_CODES)


class AdminRequest:
    """One parsed request. Header names are lower-case; the last value of a repeat wins."""

    __slots__ = ("method", "path", "query", "headers", "body", "request_id", "keep_alive")

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
        request_id: str, keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.request_id = request_id
        self.keep_alive = keep_alive


class AdminResponse:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self, status: int, body: bytes, content_type: str = JSON_TYPE,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


Dispatch = Callable[[AdminRequest], Awaitable[AdminResponse]]
Check = Callable[[str, str, dict[str, str], str], AdminResponse | None]


def _finite(value: Any) -> Any:
    """Replace NaN/Infinity (not JSON; browsers refuse them) with null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_bytes(value: Any) -> bytes:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode()


def json_response(
    status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()
) -> AdminResponse:
    return AdminResponse(status, json_bytes(value), JSON_TYPE, headers)


def problem(status: int, code: str, detail: str, request_id: str,
            **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document, the same members as the data plane's (`extra`: members
    of this problem type, such as `problems`)."""
    doc: dict[str, Any] = {"type": PROBLEM_TYPE + code, "title": title(code), "status": status,
                           "code": code, "detail": detail, "request_id": request_id}
    doc.update(extra)
    return doc


def error_response(
    status: int, code: str, message: str, request_id: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> AdminResponse:
    body = problem(status, code, message, request_id)
    return AdminResponse(status, json_bytes(body), PROBLEM_JSON_TYPE, headers)


class AdminFactory(HandlerFactory):
    """Makes an `AdminExchange` per request and keeps track of those still answering."""

    def __init__(self, check: Check, dispatch: Dispatch, limits: Limits) -> None:
        self.check = check
        self.dispatch = dispatch
        self.limits = limits
        self.active: set[AdminExchange] = set()

    def create(self, stream: ServerStream, head: RequestHead) -> StreamHandler:
        return AdminExchange(stream, head, self)

    def cancel_all(self) -> None:
        for ex in list(self.active):
            ex.cancel()


class AdminExchange(StreamHandler):
    """One admin request: head check, bounded body, async dispatch, response."""

    def __init__(self, stream: ServerStream, head: RequestHead, factory: AdminFactory) -> None:
        self.stream = stream
        self.head = head
        self.factory = factory
        self.parts: list[bytes] = []
        self.size = 0
        self.complete = head.body_length == 0
        self.started = False
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self.headers = {n.decode("latin-1").lower(): v.decode("latin-1")
                        for n, v in head.headers.fields}

    # StreamHandler ----------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        head = self.head
        if head.upgrade is not None:
            # The codec lets WebSocket handshakes through to the data plane's routes; the
            # admin API tunnels nothing.
            refusal: AdminResponse | None = error_response(
                501, "not_implemented",
                f"Upgrade: {head.upgrade.decode('latin-1')} is not accepted by the admin API",
                head.request_id)
        else:
            refusal = self.factory.check(head.method, head.path, self.headers, head.request_id)
        if refusal is None and head.body_length > self.factory.limits.max_body:
            refusal = self._too_large(head.body_length)
        if refusal is not None:
            self._respond(refusal)
        elif self.complete:
            self._dispatch()
        else:
            self.stream.set_deadline(time.monotonic() + self.factory.limits.head_timeout)

    def on_request_data(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        if self.size > self.factory.limits.max_body:
            self._respond(self._too_large(None))
            return
        self.parts.append(data)
        if self.started:
            self.stream.set_deadline(time.monotonic() + self.factory.limits.head_timeout)

    def on_request_end(self, trailers: Trailers) -> None:
        self.complete = True
        if self.started and not self.done:
            self._dispatch()

    def on_request_error(self, code: str, message: str | None) -> None:
        self._respond(error_response(400, code, message or "malformed request body",
                                     self.head.request_id))

    def on_deadline(self, now: float) -> None:
        if not self.complete and not self.done:
            self._respond(error_response(408, "request_timeout",
                                         "the request body stopped arriving",
                                         self.head.request_id))

    def on_downstream_paused(self) -> None:
        pass

    def on_downstream_resumed(self) -> None:
        pass

    def cancel(self) -> None:
        self.done = True
        if self.task is not None:
            self.task.cancel()
        self.factory.active.discard(self)

    # internals -------------------------------------------------------------------------------
    def _too_large(self, declared: int | None) -> AdminResponse:
        limit = self.factory.limits.max_body
        what = f"body of {declared} bytes" if declared is not None else "body"
        return error_response(413, "body_too_large",
                              f"{what} exceeds the limit of {limit} bytes",
                              self.head.request_id)

    def _dispatch(self) -> None:
        head = self.head
        self.stream.set_deadline(math.inf)  # handlers take what they take
        request = AdminRequest(head.method, head.path, head.query_string, self.headers,
                               b"".join(self.parts), head.request_id, head.keep_alive)
        self.factory.active.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve(request))

    async def _serve(self, request: AdminRequest) -> None:
        try:
            response = await self.factory.dispatch(request)
        finally:
            self.factory.active.discard(self)
        self._respond(response)

    def _respond(self, response: AdminResponse) -> None:
        if self.done:
            return
        self.done = True
        fields = [(b"content-type", response.content_type.encode("latin-1")),
                  (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
                  (DATE, http_date())]
        fields.extend((n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers)
        body = response.body
        stream = self.stream
        stream.send_head(ResponseHead(response.status, Headers(fields), len(body)), self.head)
        if body:
            stream.send_data(body)
        stream.send_end(None)
        stream.done(self, time.monotonic())
