"""HTTP/1.1 listener: one Protocol per client connection, parsing with httptools (llhttp).

Framing rules (RFC 9112), on top of what llhttp already refuses in strict mode (obs-fold,
control characters, space before colon, CL+TE, duplicate or malformed Content-Length,
malformed chunks, bare LF): only HTTP/1.0 and 1.1; exactly one valid Host on 1.1; a
Transfer-Encoding of exactly `chunked`; no CONNECT, no `Upgrade: h2c`; origin-form, `*` (for
OPTIONS) or absolute-form targets only. A refused request gets its JSON error and the
connection closes; nothing of it reaches an upstream.

Pipelined requests are parsed ahead and answered in order; at most `max_pipelined` wait, after
which reading pauses. One timer per connection enforces the header, idle and exchange
deadlines (it is re-armed lazily, not per request).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import httptools

from edgeward.config.schema import DEFAULT_BODY_TIMEOUT
from edgeward.http.client import WRITE_HIGH, WRITE_LOW, set_nodelay
from edgeward.http.errors import ERRORS, error_response
from edgeward.http.headers import (
    KIND_CONNECTION,
    KIND_CONTENT_LENGTH,
    KIND_EXPECT,
    KIND_HOST,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    KIND_TRACEPARENT,
    KIND_TRANSFER_ENCODING,
    KIND_UPGRADE,
    KIND_XFF,
    KIND_XFH,
    KIND_XFP,
    PLAIN_CONNECTION,
    ForwardedPolicy,
    RequestIds,
    connection_tokens,
    header_kind,
    split_host,
    valid_host,
)
from edgeward.http.message import NO_BODY, STREAMED, RequestHead
from edgeward.http.outbox import outbox_for
from edgeward.proxy.exchange import Exchange

if TYPE_CHECKING:
    from edgeward.proxy.snapshot import Snapshot
    from edgeward.proxy.telemetry import Tracer

PAUSE_PIPELINE: Final = 4  # too many pipelined requests are waiting for their turn
PAUSE_REFUSED: Final = 8   # bad bytes were read: nothing more is parsed on this connection
NO_DEADLINE: Final = math.inf  # set_deadline(NO_DEADLINE): nothing to enforce for now

_HOST: Final = b"host"
_UPGRADE: Final = b"upgrade"
_METHODS: Final = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")}
# Host header value -> lower-case host name (None when invalid). Bounded: a flood of
# distinct hosts only stops the cache from growing.
_HOSTS: Final[dict[bytes, str | None]] = {}
_MAX_HOSTS: Final = 4096


def _host_name(value: bytes) -> str | None:
    try:
        return _HOSTS[value]
    except KeyError:
        pass
    host = split_host(value) if valid_host(value) else None
    if len(_HOSTS) < _MAX_HOSTS:
        _HOSTS[value] = host
    return host
# llhttp (strict) stops at versions other than 0.9/1.0/1.1/2.0 with this message; such a
# client gets the same 505 as HTTP/2.0 in a request line, not a generic 400.
_LLHTTP_BAD_VERSION: Final = "Invalid HTTP version"


class Refused(Exception):
    """Raised inside a parser callback to stop parsing after a refusal was written."""


class ListenerSettings:
    """Per-listener limits, compiled from the `server:` config section."""

    __slots__ = (
        "header_timeout", "idle_timeout", "body_timeout", "max_request_line",
        "max_header_bytes", "max_pipelined", "forwarded", "scheme",
    )

    def __init__(
        self,
        *,
        header_timeout: float,
        idle_timeout: float,
        max_request_line: int,
        max_header_bytes: int,
        max_pipelined: int,
        trusted_proxies: list[str],
        scheme: str = "http",
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_pipelined = max_pipelined
        self.forwarded = ForwardedPolicy(trusted_proxies)
        self.scheme = scheme


class ListenerState:
    """What all connections of one worker share: settings, the snapshot in force, ids."""

    __slots__ = ("settings", "snapshot", "ids", "connections", "draining", "on_done", "tracer")

    def __init__(self, settings: ListenerSettings, snapshot: Snapshot) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.ids = RequestIds()
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.on_done: Callable[[Exchange], None] | None = None
        self.tracer: Tracer | None = None


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "state", "loop", "transport", "parser", "client_ip",
        "url", "url_bytes", "headers", "head_bytes", "wire_bytes", "in_head", "parsing", "trailers",
        "current", "queue", "paused", "writing_paused", "closing",
        "deadline", "timer", "timer_at", "http10", "keep_alive", "out_chunked", "head_only",
        "out_head", "refusal", "outbox", "forwarded_prefix", "head_timed", "host_seen",
        "host_name", "feeding", "begun", "fresh",
    )

    def __init__(self, state: ListenerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.url: list[bytes] = []
        self.url_bytes = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0  # request line target + fields, as parsed
        self.wire_bytes = 0  # raw bytes received while a head is incomplete
        self.in_head = False
        self.parsing: Exchange | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.current: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.paused = 0
        self.writing_paused = False
        self.closing = False
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.http10 = False
        self.keep_alive = True
        self.out_chunked = False
        self.head_only = False
        self.out_head: bytes | None = None
        self.refusal: tuple[str, str | None] | None = None  # owed after queued replies
        self.outbox = outbox_for(loop)
        self.forwarded_prefix = b""  # X-Forwarded-For/-Proto lines up to X-Forwarded-Host's value
        self.head_timed = False  # the header timeout runs for the head being read
        self.host_seen = b""     # the last Host value and its host name (clients repeat it)
        self.host_name: str | None = None
        # The bytes being parsed, the messages begun in them, and whether the first began at
        # their start: then a head that fills them exactly can be forwarded as received.
        self.feeding = b""
        self.begun = 0
        self.fresh = False

    # asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport = tr
        tr.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.state.connections.add(self)
        self.set_deadline(self.loop.time() + self.state.settings.header_timeout)

    def data_received(self, data: bytes) -> None:
        if (self.closing and self.current is None) or self.refusal is not None:
            return  # closing, or bad bytes were seen: nothing more is parsed
        self.feeding = data
        self.begun = 0
        self.fresh = not self.in_head and self.parsing is None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # an upgrade request was already answered and the connection is closing
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, Refused):
                raise
        except httptools.HttpParserError as exc:
            if str(exc) == _LLHTTP_BAD_VERSION:
                self._refuse("http_version_not_supported",
                             "only HTTP/1.0 and HTTP/1.1 are accepted")
            else:
                self._refuse("bad_request", f"malformed HTTP/1.1: {exc}")
            return
        except Refused:
            return
        finally:
            self.feeding = b""
        if self.in_head:
            # A head still incomplete after this read: bound what llhttp may be buffering,
            # and the time it may take (from here: a head that arrives whole, as most do,
            # needs no clock read).
            self.wire_bytes += len(data)
            if self.wire_bytes > self.state.settings.max_header_bytes:
                self._refuse("header_too_large")
            elif not self.head_timed and self.current is None:
                self.head_timed = True
                self.set_deadline(self.loop.time() + self.state.settings.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        current = self.current
        if current is not None:
            self.current = None
            current.cancel()
            self._account(current)
        for ex in self.queue:
            ex.cancel()
        self.queue.clear()
        self.transport = None

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.current is not None:
            self.current.on_downstream_paused()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.current is not None:
            self.current.on_downstream_resumed()

    # httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.begun += 1
        self.url = []
        self.url_bytes = 0
        self.headers = []
        self.head_bytes = 0
        self.wire_bytes = 0
        self.in_head = True
        self.head_timed = False
        self.trailers = None

    def on_url(self, part: bytes) -> None:
        self.url.append(part)
        self.url_bytes += len(part)
        if self.url_bytes > self.state.settings.max_request_line:
            self._refuse("uri_too_long")
            raise Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.parsing is not None:
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))
            return
        self.headers.append((name, value))
        # A whole head can arrive in one read (the wire count above never sees it
        # incomplete), so the parsed fields are counted too.
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes + self.url_bytes > self.state.settings.max_header_bytes:
            self._refuse("header_too_large")
            raise Refused

    def on_headers_complete(self) -> None:
        self.in_head = False
        head = self._build_head()
        if head is None:
            raise Refused
        ex = Exchange(self, head, self.state.snapshot)
        self.parsing = ex
        if self.current is None:
            self._begin(ex)
        else:
            self.queue.append(ex)
            if len(self.queue) >= self.state.settings.max_pipelined:
                self.pause_reading(PAUSE_PIPELINE)

    def on_body(self, data: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            ex.on_request_body(data)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is not None:
            self.parsing = None
            trailers, self.trailers = self.trailers, None
            ex.on_request_end(trailers)

    # request head --------------------------------------------------------------------------
    def _build_head(self) -> RequestHead | None:
        parser = self.parser
        raw_method = parser.get_method()
        if raw_method == b"GET":
            method = "GET"
        else:
            known = _METHODS.get(raw_method)
            method = known if known is not None else raw_method.decode("ascii")
        if method == "CONNECT":
            self._refuse("not_implemented", "CONNECT is not forwarded")
            return None
        url = self.url
        target = url[0] if len(url) == 1 else b"".join(url)
        authority: bytes | None = None
        if target[:1] == b"/":
            pass
        elif target == b"*":
            if method != "OPTIONS":
                self._refuse("bad_request", "the * target is only valid for OPTIONS")
                return None
        else:
            parsed = _absolute_form(target)
            if parsed is None:
                self._refuse("bad_request", "request target must be origin-form or absolute-form")
                return None
            authority, target = parsed
        hosts = 0
        host_value = b""
        chunked = False
        content_length = -1
        conn_tokens: frozenset[bytes] | None = None
        upgrade: bytes | None = None
        expect_continue = False
        request_id: bytes | None = None
        xff: bytes | None = None
        xfp: bytes | None = None
        xfh: bytes | None = None
        traceparent: bytes | None = None
        tracer = self.state.tracer
        kept: list[tuple[bytes, bytes]] = []
        # The head may be forwarded as received when the read holds exactly it, written
        # canonically (`name: value`, one space): each line is checked to end where that
        # spelling ends it (a line written otherwise differs by one space at most, and no
        # CR can occur inside a line, so a CRLF there proves the line is canonical).
        data = self.feeding
        pos = len(raw_method) + self.url_bytes + 12  # after `METHOD target HTTP/1.1\r\n`
        as_sent = (self.fresh and self.begun == 1 and data[0] == raw_method[0]
                   and len(data) == pos + self.head_bytes + 2
                   and data[pos - 2] == 13 and data[pos - 1] == 10)
        for item in self.headers:
            name, value = item
            if as_sent:
                pos += len(name) + len(value) + 4
                as_sent = data[pos - 2] == 13 and data[pos - 1] == 10
            kind = header_kind(name)
            if kind == KIND_PLAIN:
                kept.append(item)
                continue
            if kind == KIND_HOST:
                hosts += 1
                host_value = value
                if value and (value[-1] == 32 or value[-1] == 9):
                    host_value = value.rstrip(b" \t")  # llhttp leaves trailing OWS in values
                kept.append(item)
                continue
            if kind == KIND_TRACEPARENT and tracer is None:
                kept.append(item)  # not tracing: an end-to-end header like any other
                continue
            as_sent = False
            if kind == KIND_CONTENT_LENGTH:
                content_length = int(value)
            elif kind == KIND_TRANSFER_ENCODING:
                if value.strip().lower() != b"chunked":
                    self._refuse("not_implemented", "only Transfer-Encoding: chunked is accepted")
                    return None
                chunked = True
            elif kind == KIND_CONNECTION:
                tokens = connection_tokens(value)
                conn_tokens = tokens if conn_tokens is None else conn_tokens | tokens
            elif kind == KIND_UPGRADE:
                upgrade = value.strip().lower()
            elif kind == KIND_EXPECT:
                expect_continue = value.strip().lower() == b"100-continue"
            elif kind == KIND_REQUEST_ID:
                request_id = value
            elif kind == KIND_XFF:
                xff = value if xff is None else xff + b", " + value
            elif kind == KIND_XFP:
                xfp = value
            elif kind == KIND_XFH:
                xfh = value
            elif kind == KIND_TRACEPARENT:
                traceparent = value
            # KIND_HOP: dropped
        if upgrade is not None and conn_tokens and _UPGRADE in conn_tokens:
            if upgrade == b"h2c":
                self._refuse("bad_request", "Upgrade: h2c is not accepted")
            else:
                self._refuse("not_implemented", f"Upgrade: {upgrade.decode('latin-1')}")
            return None
        # llhttp keeps the version to itself but for a formatted string; a request that
        # llhttp calls persistent without any Connection header can only be HTTP/1.1.
        keep_alive = parser.should_keep_alive()
        if keep_alive and conn_tokens is None:
            http10 = False
        else:
            version = parser.get_http_version()
            if version != "1.1" and version != "1.0":
                self._refuse("http_version_not_supported", f"HTTP/{version} is not accepted")
                return None
            http10 = version == "1.0"
        if not http10 and hosts != 1:
            self._refuse("bad_request", "HTTP/1.1 needs exactly one Host header")
            return None
        if hosts != 1:
            host: str | None = ""
        elif host_value == self.host_seen:
            host = self.host_name
        else:
            host = self.host_name = _host_name(host_value)
            self.host_seen = host_value
        if hosts > 1 or host is None:
            self._refuse("bad_request", "invalid Host header")
            return None
        if authority is not None:
            # RFC 9112 §3.2.2: the absolute-form target's authority replaces Host.
            kept = [(n, v) for n, v in kept if n.lower() != _HOST]
            kept.insert(0, (b"Host", authority))
            host_value = authority
            host = split_host(authority)
        if conn_tokens and not conn_tokens <= PLAIN_CONNECTION:
            kept = [(n, v) for n, v in kept if n.lower() not in conn_tokens]
        state = self.state
        rid = request_id.decode() if request_id and RequestIds.acceptable(request_id) else None
        if rid is None:
            rid = state.ids.new()
        if chunked:
            body_length = STREAMED
        elif content_length > 0:
            body_length = content_length
        else:
            body_length = NO_BODY
        query = target.find(b"?")
        path = target if query < 0 else target[:query]
        head = RequestHead(
            method, target, path.decode("latin-1"), host, host_value,
            kept, body_length, self.client_ip, rid, state.settings.scheme,
        )
        head.expect_continue = expect_continue
        # Per request: a pipelined request's own keep-alive and version govern its response.
        head.keep_alive = keep_alive
        head.http10 = http10
        id_line = b"x-request-id: " + rid.encode() + b"\r\n"
        head.id_line = id_line
        if as_sent and not http10 and authority is None:
            # Nothing to drop or rewrite: the head as received, less its final CRLF.
            wire = [data[:-2]]
        else:
            wire = [raw_method, b" ", target, b" HTTP/1.1\r\n"]
            for name, value in kept:
                wire.append(name)
                wire.append(b": ")
                wire.append(value)
                wire.append(b"\r\n")
        if xff is not None and state.settings.forwarded.trusts(head.client_ip):
            client = head.client_ip.encode()
            wire.append(b"x-forwarded-for: " + xff + b", " + client + b"\r\n")
            wire.append(b"x-forwarded-proto: " + (xfp or state.settings.scheme.encode()) + b"\r\n")
            wire.append(b"x-forwarded-host: " + (xfh or host_value) + b"\r\n")
        else:
            prefix = self.forwarded_prefix
            if not prefix:
                prefix = self.forwarded_prefix = (
                    b"x-forwarded-for: " + self.client_ip.encode() + b"\r\nx-forwarded-proto: "
                    + state.settings.scheme.encode() + b"\r\nx-forwarded-host: ")
            wire.append(prefix)
            wire.append(host_value)
            wire.append(b"\r\n")
        wire.append(id_line)
        if tracer is not None:
            head.trace, line = tracer.start(traceparent)
            wire.append(line)
        head.wire = b"".join(wire)
        return head

    # Downstream (for Exchange) -------------------------------------------------------------
    def send_continue(self) -> None:
        if self.transport is not None and not self.http10:
            self.outbox.write(self.transport, b"HTTP/1.1 100 Continue\r\n\r\n")

    def send_head(
        self, ex: Exchange, status: int, head: bytes, body_length: int, extra: bytes,
    ) -> None:
        transport = self.transport
        if transport is None:
            return
        keep = self.keep_alive and not self.closing
        self.out_chunked = False
        tail = b""
        if body_length == STREAMED:
            if not self.http10:
                tail = b"transfer-encoding: chunked\r\n"
                self.out_chunked = True
            else:
                keep = False  # HTTP/1.0 without a length: the body ends when the connection does
        if not keep:
            self.keep_alive = False
            end = b"connection: close\r\n\r\n"
        elif self.http10:
            end = b"connection: keep-alive\r\n\r\n"
        else:
            end = b"\r\n"
        # Held back until the first body bytes or the end of this upstream read, so that a
        # small response leaves in one segment.
        if extra or tail:
            self.out_head = b"".join((head, ex.head.id_line, extra, tail, end))
        else:
            self.out_head = head + ex.head.id_line + end

    def flush(self) -> None:
        head = self.out_head
        if head is not None:
            self.out_head = None
            if self.transport is not None:
                self.outbox.write(self.transport, head)

    def send_body(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not data:
            return
        head = self.out_head
        if head is not None:
            self.out_head = None
        else:
            head = b""
        if self.out_chunked:
            if len(data) < 16384:
                self.outbox.write(transport, b"%b%x\r\n%b\r\n" % (head, len(data), data))
            else:
                self.outbox.write(transport, [head + b"%x\r\n" % len(data), data, b"\r\n"])
        elif len(data) < 16384 or not head:
            self.outbox.write(transport, head + data if head else data)
        else:
            self.outbox.write(transport, [head, data])

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        self.flush()
        if self.transport is None or not self.out_chunked:
            return
        if trailers:
            lines = b"".join(n + b": " + v + b"\r\n" for n, v in trailers)
            self.outbox.write(self.transport, b"0\r\n" + lines + b"\r\n")
        else:
            self.outbox.write(self.transport, b"0\r\n\r\n")

    def local_reply(
        self, ex: Exchange, code: str, message: str | None,
        extra_headers: list[tuple[bytes, bytes]] | None,
    ) -> None:
        ex.status = ERRORS[code].status
        close = not ex.request_done or not self.keep_alive or self.closing
        if close:
            self.keep_alive = False
        if self.transport is not None:
            trace = ex.head.trace
            self.outbox.write(
                self.transport,
                error_response(code, ex.head.request_id, message=message, close=close,
                               extra_headers=extra_headers, head_only=self.head_only,
                               trace_id=getattr(trace, "trace_id", None))
            )

    def abort(self) -> None:
        self.keep_alive = False
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def set_deadline(self, when: float) -> None:
        """Enforce `when` (loop time); NO_DEADLINE (inf) means none for now."""
        self.deadline = when
        timer = self.timer
        if when == NO_DEADLINE:
            return  # an armed timer finds no deadline when it fires and stays unarmed
        if timer is None:
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)
        elif when < self.timer_at:
            timer.cancel()
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)

    def exchange_done(self, ex: Exchange) -> None:
        if ex is not self.current:
            return
        self.current = None
        self._account(ex)
        if not self.keep_alive or not ex.request_done or self.closing:
            self._close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.resume_reading(PAUSE_PIPELINE)
            self._begin(nxt)
        elif self.refusal is not None:
            code, message = self.refusal
            self.refusal = None
            self.closing = True
            if self.transport is not None:
                self.outbox.write(self.transport, error_response(
                    code, self.state.ids.new(), message=message, close=True))
            self._close()
        elif self.state.draining:
            self._close()
        else:
            self.set_deadline(ex.ended + self.state.settings.idle_timeout)

    # internals -----------------------------------------------------------------------------
    def _begin(self, ex: Exchange) -> None:
        self.current = ex
        head = ex.head
        self.head_only = head.method == "HEAD"
        self.http10 = head.http10
        self.keep_alive = head.keep_alive and not self.state.draining
        ex.start()

    def _account(self, ex: Exchange) -> None:
        hook = self.state.on_done
        if hook is not None:
            hook(ex)

    def _on_timer(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        now = self.loop.time()
        if now < self.deadline:
            if self.deadline != NO_DEADLINE:
                self.timer_at = self.deadline
                self.timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        current = self.current
        if current is not None:
            current.on_deadline(now)
        elif self.in_head:
            self._refuse("request_timeout")
        else:
            self._close()  # idle keep-alive connection, or no request byte at all

    def _refuse(self, code: str, message: str | None = None) -> None:
        """Answer a request the gateway will not forward, then close the connection."""
        self.in_head = False
        if self.closing or self.refusal is not None or self.transport is None:
            return
        current = self.current
        if current is None:
            self.closing = True
            self.keep_alive = False
            rid = self.state.ids.new()
            self.outbox.write(self.transport,
                              error_response(code, rid, message=message, close=True))
            self.outbox.close(self.transport)
        elif self.parsing is current:
            # The body of the request in progress is malformed (bad chunk size or
            # terminator): it can never complete, so the exchange fails now (the upstream
            # connection is aborted, its half-sent request with it) instead of waiting on a
            # body that will not come.
            self.closing = True
            self.keep_alive = False
            self.parsing = None
            current.fail(code, message)
        else:
            # Bad bytes behind a request still being answered: the requests parsed before
            # them are answered first, in order, then this refusal, then the connection
            # closes (nothing after bad bytes can be trusted). A queued request whose body
            # broke off can never complete, so it is dropped with the connection.
            broken = self.parsing
            if broken is not None:
                self.parsing = None
                if broken in self.queue:
                    self.queue.remove(broken)
            self.refusal = (code, message)
            self.pause_reading(PAUSE_REFUSED)

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.outbox.close(self.transport)

    def close_if_idle(self) -> bool:
        """For draining: close now when nothing is in flight; else after the current reply."""
        self.closing = True
        if self.current is None and not self.in_head:
            self._close()
            return True
        return False


def _absolute_form(target: bytes) -> tuple[bytes, bytes] | None:
    """`http://host:port/p?q` -> (b"host:port", b"/p?q"); None when not a valid http(s) URI."""
    lowered = target[:8].lower()
    if not (lowered.startswith(b"http://") or lowered.startswith(b"https://")):
        return None
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return None
    parsed: Any = url  # httptools' stub says `port: int`, but it is None when absent
    host: bytes | None = parsed.host
    port: int | None = parsed.port
    if not host:
        return None
    authority = host if port is None else host + b":" + str(port).encode()
    if not valid_host(authority):
        return None
    path = url.path or b"/"
    if url.query:
        path += b"?" + url.query
    return authority, path
