"""A small HTTP/1.1 server connection for the admin API: httptools parsing on an asyncio Protocol.

One connection object per client. It parses requests (keep-alive, pipelining in order),
bounds the head and the body, hands each complete request to an async `dispatch` and writes
the response. Framing errors get a JSON error and close the connection: after a parse error
the byte stream cannot be trusted for a next request (RFC 9112 section 11).

Not the data plane: the admin API serves people and scrapers, so clarity wins over the last
microsecond; the bounds (head, body, pipelined queue, idle time) still apply.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httptools

from edgeward.admin.config import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_HEAD

# Pipelined requests queued per connection before reading pauses (bounded memory per client).
MAX_QUEUED_REQUESTS = 8

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}

JSON_TYPE = "application/json"


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    max_head: int = DEFAULT_MAX_HEAD
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


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


def error_response(
    status: int, code: str, message: str, request_id: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> AdminResponse:
    body = {"code": code, "message": message, "request_id": request_id}
    return json_response(status, body, headers)


def new_request_id(offered: str | None) -> str:
    """Keep a caller's X-Request-Id when it is short and plain, else make one."""
    if offered is not None and _REQUEST_ID_RE.match(offered):
        return offered
    return secrets.token_hex(8)


class _Reject(Exception):
    """Raised from a parser callback: answer with this error and close."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Final:
    """A framing error's answer, queued behind the requests parsed before it."""

    __slots__ = ("response", "request_id")

    def __init__(self, response: AdminResponse, request_id: str) -> None:
        self.response = response
        self.request_id = request_id


class AdminConnection(asyncio.Protocol):
    """One client connection: parse, queue, dispatch in order, write, keep alive or close."""

    def __init__(
        self, dispatch: Dispatch, limits: Limits, connections: set[AdminConnection]
    ) -> None:
        self._dispatch = dispatch
        self._limits = limits
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # Per-request state, reset in on_message_begin.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._head_size = 0
        self._body_size = 0
        # Per-connection state.
        self._queue: deque[AdminRequest | _Final] = deque()
        self._broken = False
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._idle: asyncio.TimerHandle | None = None

    # -- transport events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._closing = True
        self._can_write.set()
        if self._idle is not None:
            self._idle.cancel()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._broken:
            return
        self._arm_idle()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # httptools wraps an exception raised in a callback; ours carries the answer.
            reject = exc.__context__
            if isinstance(reject, _Reject):
                self._fail(reject.status, reject.code, reject.message)
            else:
                self._fail(400, "bad_request", f"malformed HTTP/1.1 request: {exc}")

    def eof_received(self) -> bool | None:
        # A half-closed client still gets the answers to what it already sent.
        if self._worker is None or self._worker.done():
            return None
        self._closing = True
        return True

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._head_size = 0
        self._body_size = 0

    def _count_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self._limits.max_head:
            raise _Reject(431, "headers_too_large",
                          f"request line and headers exceed {self._limits.max_head} bytes")

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._parser.should_upgrade():
            raise _Reject(400, "bad_request", "protocol upgrades are not supported here")
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limits.max_body:
            raise _Reject(413, "body_too_large",
                          f"body of {length} bytes exceeds the limit of "
                          f"{self._limits.max_body} bytes")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limits.max_body:
            raise _Reject(413, "body_too_large",
                          f"body exceeds the limit of {self._limits.max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError as exc:
            raise _Reject(400, "bad_request", f"invalid request target: {exc}") from None
        request = AdminRequest(
            method=self._parser.get_method().decode("ascii"),
            path=(url.path or b"/").decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            request_id=new_request_id(self._headers.get("x-request-id")),
            keep_alive=bool(self._parser.should_keep_alive()),
        )
        self._enqueue(request)

    def _enqueue(self, item: AdminRequest | _Final) -> None:
        self._queue.append(item)
        if len(self._queue) >= MAX_QUEUED_REQUESTS and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._serve())

    # -- serving ---------------------------------------------------------------------------

    async def _serve(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if self._reading_paused and self._transport is not None and not self._broken:
                self._transport.resume_reading()
                self._reading_paused = False
            if isinstance(item, _Final):
                response, request_id, keep = item.response, item.request_id, False
            else:
                response = await self._dispatch(item)
                request_id = item.request_id
                keep = item.keep_alive and not (self._closing and not self._queue)
            await self._can_write.wait()
            if self._transport is None or self._transport.is_closing():
                return
            self._write(response, request_id, keep)
            if not keep:
                self._close()
                return
        self._arm_idle()

    def _write(self, response: AdminResponse, request_id: str, keep_alive: bool) -> None:
        assert self._transport is not None
        reason = REASONS.get(response.status, "Unknown")
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"X-Request-Id: {request_id}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._transport.write(head + response.body)

    def _fail(self, status: int, code: str, message: str) -> None:
        """Answer a framing error after the requests parsed before it, then close."""
        self._broken = True
        if self._transport is not None:
            self._transport.pause_reading()
        request_id = new_request_id(self._headers.get("x-request-id"))
        self._enqueue(_Final(error_response(status, code, message, request_id), request_id))

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self._loop.call_later(self._limits.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._arm_idle()  # still answering: not idle
            return
        self._close()

    def shutdown(self) -> None:
        """Server close: stop this connection now (admin requests are short and retryable)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._close()
