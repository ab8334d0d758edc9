"""One request's trip through the gateway: route, filter chain, forward, stream back, account.

An Exchange is the `StreamHandler` of one request stream: the server codec drives it with the
request's head, body and end, and with its deadline; it answers through the stream
(`ServerStream`). It routes the request, runs the route's filter chain (`edgeward.filters`),
hands the request to its `Forwarder` (the upstream side: tries, connections, retries) and
passes the response back through the chain's response phases. It never sees wire bytes and
creates no task unless a filter must wait or a connection must be opened.

States and transitions: `edgeward.proxy.states` (anything not in that table raises).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any, Final

from edgeward.filters.api import Reply
from edgeward.grpc.status import status_for, status_of, trailers_only
from edgeward.http.date import DATE, http_date
from edgeward.http.errors import ERRORS, PROBLEM_JSON, REASONS, error_body
from edgeward.http.fields import Headers
from edgeward.http.message import STREAMED, RequestHead, ResponseHead
from edgeward.http.stream import PAUSE_HELD_BODY, ClientStream, ServerStream, Trailers
from edgeward.http.tunnel import TunnelStats
from edgeward.http.ws_handshake import Refusal
from edgeward.proxy import local_ws, states, upgrade
from edgeward.proxy.body import PENDING_LIMIT
from edgeward.proxy.chain import EMPTY, Chain
from edgeward.proxy.context import ExchangeContext
from edgeward.proxy.forward import Forwarder
from edgeward.proxy.phases import FilterRun
from edgeward.proxy.states import (
    ALLOWED_BITS,
    BACKOFF,
    CONNECTING,
    DONE,
    FILTERING,
    HEAD,
    STREAMING,
    WAITING,
)
from edgeward.proxy.streamed import StreamedReply

if TYPE_CHECKING:
    from edgeward.proxy.route import Route

NO_DEADLINE: Final = math.inf
log = logging.getLogger("edgeward.proxy")


class HeldBody:
    """Request body read before its exchange started (a pipelined request waiting for the one
    before it): held, then handed to the exchange when it starts, as if it arrived then, so
    the route's body filters see all of it. Reading pauses beyond PENDING_LIMIT."""

    __slots__ = ("parts", "size", "ended", "trailers", "paused")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.ended = False
        self.trailers: Trailers = None
        self.paused = False

    @staticmethod
    def of(ex: Exchange) -> HeldBody:
        early = ex.early
        if early is None:
            early = ex.early = HeldBody()
        return early

    def add(self, data: bytes, down: ServerStream) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size > PENDING_LIMIT and not self.paused:
            self.paused = True
            down.pause_reading(PAUSE_HELD_BODY)

    def hand_over(self, ex: Exchange) -> None:
        for part in self.parts:
            if ex.state == DONE:
                break
            ex.on_request_data(part)
        if self.ended and ex.state != DONE:
            ex.on_request_end(self.trailers)
        if self.paused:
            ex.down.resume_reading(PAUSE_HELD_BODY)


class Exchange(FilterRun):
    __slots__ = ("fwd", "status", "error_code", "bytes_out", "request_done", "ended", "early",
                 "reserved", "grpc_status", "local")

    def __init__(self, down: ServerStream, head: RequestHead, factory: ExchangeContext) -> None:
        self.down = down
        self.head = head
        self.factory = factory
        self.snapshot = factory.snapshot
        self.route: Route | None = None
        self.chain: Chain = EMPTY
        self.state = HEAD
        self.at = 0                 # the next request filter to run
        self.passed = 0             # filters (by position in the chain) the request passed
        self.held: asyncio.Future[Any] | None = None  # a filter's wait
        self.fwd: Forwarder | None = None
        self.resp: ResponseHead | None = None
        self.status = 0
        self.error_code: str | None = None
        self.bytes_out = 0
        self.request_done = head.body_length == 0
        self.started = 0.0          # clock when the exchange started
        self.ended = 0.0            # clock when it finished
        # The clock read at the response head, while the upstream read that carried it is
        # still being handled (0 after): a response that ends in the same read ends then.
        self.read_now = 0.0
        self.total_deadline = 0.0   # the route timeout, from the end of the request
        self.early: HeldBody | None = None  # body read before start()
        self.reserved: TunnelStats | None = None  # a tunnel slot held for a handshake
        # The call's grpc-status (b"" none or unknown): on routes matching `grpc:`, and in the
        # gateway's own answers to gRPC calls.
        self.grpc_status = b""
        self.local: StreamedReply | None = None  # a streamed local reply's output

    def to(self, new: int) -> None:
        old = self.state
        if not (ALLOWED_BITS >> (old * 8 + new)) & 1:
            states.check(old, new)  # raises, naming both states
        self.state = new

    # StreamHandler: the request ------------------------------------------------------------------
    def start(self) -> None:
        self._start()
        early = self.early
        if early is not None:
            self.early = None
            early.hand_over(self)

    def _start(self) -> None:
        head = self.head
        factory = self.factory
        now = self.started = head.started = factory.clock()
        factory.prepare(head)
        route = self.snapshot.match(head)
        if route is None:
            self.fail("route_not_found")
            return
        self.route = route
        head.route_name = route.name
        head.upstream = route.upstream_name  # a filter (split) may choose another
        self.chain = route.chain
        if head.upgrade is not None:
            refused = upgrade.refusal(route, head)
            if refused is not None:
                self.fail(refused.code, refused.detail, refused.fields)
                return
        if self.request_done and route.timeout is not None:
            self.total_deadline = now + route.timeout
        self.to(FILTERING)
        if route.chain.request:
            self._run_request_filters()
        else:
            self.passed = len(route.chain.filters)
            self._forward()

    def on_request_data(self, data: bytes) -> None:
        state = self.state
        if state == DONE:
            return
        if state == HEAD:  # not started: no route, no filters yet
            HeldBody.of(self).add(data, self.down)
            return
        head = self.head
        head.body_received += len(data)
        if self.chain.request_body:
            filtered = self._request_body(data, False)
            if filtered is None:
                return
            data = filtered
        self._forwarder().send_body(data)

    def on_request_end(self, trailers: Trailers) -> None:
        if self.state == DONE or self.request_done:
            return
        if self.state == HEAD:
            early = HeldBody.of(self)
            early.ended, early.trailers = True, trailers
            return
        self.request_done = True
        head = self.head
        if trailers:
            head.trailers = Headers(trailers)
        if self.chain.request_body:
            tail = self._request_body(b"", True)
            if tail is None:
                return
            if tail:
                self._forwarder().send_body(tail)
            # The trailers as the body filters left them (read or changed with `end`).
            trailers = head.trailers.fields if head.trailers is not None else None
        route = self.route
        if route is not None and route.timeout is not None:
            self.total_deadline = self.factory.clock() + route.timeout
        self._forwarder().send_end(trailers)

    def on_request_error(self, code: str, message: str | None) -> None:
        self.fail(code, message)

    def on_deadline(self, now: float) -> None:
        state = self.state
        if state == FILTERING:
            self.fail("filter_timeout")
        elif state == STREAMING:
            self.error_code = "upstream_timeout"
            self._reset()
        elif self.fwd is not None and state != DONE:
            self.fwd.on_deadline(now)

    def on_downstream_paused(self) -> None:
        if self.fwd is not None:
            self.fwd.pause_response()
        elif self.local is not None:
            self.local.pause()

    def on_downstream_resumed(self) -> None:
        if self.fwd is not None:
            self.fwd.resume_response()
        elif self.local is not None:
            self.local.resume()

    def cancel(self) -> None:
        """The client went away: release everything this exchange holds."""
        state = self.state
        if state == DONE:
            return
        if state == HEAD:
            self.state = DONE  # a pipelined request that never started: nothing to account
            return
        self.error_code = self.error_code or "client_closed"
        self._close(notify=False)

    # forwarding --------------------------------------------------------------------------------
    def _forwarder(self) -> Forwarder:
        fwd = self.fwd
        if fwd is None:
            fwd = self.fwd = Forwarder(self)
        return fwd

    def _forward(self) -> None:
        route = self.route
        head = self.head
        assert route is not None
        name = head.upstream
        if name is None or name is route.upstream_name:
            cluster = route.cluster
        else:
            cluster = self.snapshot.clusters.get(name)
            if cluster is None:
                self.fail("filter_error", f"no upstream named {name!r}")
                return
        if cluster is None:
            self.fail("no_healthy_upstream")
            return
        if head.expect_continue and not self.request_done:
            self.down.send_continue()
        if head.upgrade is not None and self.reserved is None:
            self.reserved = upgrade.reserve(self.factory.websocket, route)
            if self.reserved is None:
                self.fail("websocket_limit")
                return
        self._forwarder().begin(cluster, route)

    # the response --------------------------------------------------------------------------
    def response_head(self, resp: ResponseHead) -> None:
        """The upstream's answer (the forwarder recorded its outcome): on to the client."""
        self._response_filters(resp)
        self.to(STREAMING)
        self.resp = resp
        self.status = resp.status
        if self.route is not None and self.route.grpc:  # a trailers-only answer's status
            self.grpc_status = resp.headers.first(b"grpc-status") or b""
        self.down.set_deadline(self.total_deadline or NO_DEADLINE)
        self.down.send_head(resp, self.head)

    def response_data(self, data: bytes) -> None:
        if self.chain.response_body:
            data = self._response_body(data, False)
        self.bytes_out += len(data)
        self.down.send_data(data)

    def response_end(self, trailers: Trailers) -> None:
        if trailers and self.route is not None and self.route.grpc:
            self.grpc_status = status_of(trailers) or self.grpc_status
        if self.chain.response_body:
            resp = self.resp
            assert resp is not None
            if trailers:
                resp.trailers = Headers(trailers)
            tail = self._response_body(b"", True)
            if self.state == DONE:
                return  # a body filter failed: the stream was reset
            if tail:
                self.bytes_out += len(tail)
                self.down.send_data(tail)
            # The trailers as the body filters left them (read or changed with `end`).
            trailers = resp.trailers.fields if resp.trailers is not None else None
        self.down.send_end(trailers)
        self._close(notify=True)

    def switch(self, resp: ResponseHead, conn: ClientStream) -> None:
        """The upstream answered the handshake with 101: with the right accept key, both
        connections become a tunnel and the exchange ends (status 101)."""
        route, stats = self.route, self.reserved
        # A 101 only answers a handshake, which its route accepted and holds a slot for.
        assert route is not None and route.websocket is not None and stats is not None
        taken = upgrade.take_over(self.head, resp, conn)
        if isinstance(taken, Refusal):
            self.fail(taken.code, taken.detail)
            return
        transport, early = taken
        self._response_filters(resp)
        if not self.down.upgrade(resp, self.head, transport, early, route.websocket, stats):
            transport.abort()  # the worker began draining meanwhile
            self.fail("shutting_down")
            return
        _switched(self, resp)

    # endings -----------------------------------------------------------------------------------
    def fail(self, code: str, message: str | None = None,
             extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer with the gateway's error for `code` (or reset the stream if the response
        has begun)."""
        if self.state == DONE:
            return
        if self.state == STREAMING:
            self.error_code = code
            self._reset()
            return
        reply = Reply(ERRORS[code].status)
        reply.code, reply.detail = code, message
        if extra:
            reply.fields = extra
        self.reply(reply)

    def reply(self, reply: Reply) -> None:
        """Answer the client with `reply` (the response filters the request passed see it)."""
        if self.state != DONE:
            _answer(self, reply)

    def _reset(self) -> None:
        """The response cannot be completed: reset the client's stream."""
        if self.fwd is not None:
            self.fwd.abandon()
        self.down.reset()
        self._close(notify=True)

    def _close(self, notify: bool) -> None:
        """Finish: release what the exchange holds, tell the filters, account, free the
        stream (`notify`: the client is still there to be told)."""
        if self.state == DONE:
            return
        self.ended = self.read_now or self.factory.clock()
        self.state = DONE
        held = self.held
        if held is not None:
            self.held = None
            held.cancel()
        if self.fwd is not None:
            self.fwd.release(self.ended)
        chain = self.chain
        if chain.done:
            self._done_filters(chain)
        if self.head.upgrade is not None:
            fwd = self.fwd
            upgrade.handshake_done(self.factory.websocket, self.head.route_name, self.reserved,
                                   self.status, fwd is not None and fwd.attempt > 0,
                                   self.error_code)
            self.reserved = None
        hook = self.factory.on_done
        if hook is not None:
            hook(self)
        # The forwarder points back at the exchange: dropping it here lets reference counting
        # free both (the request path makes no garbage for the cyclic collector).
        self.fwd = None
        if self.local is not None:
            self.local.resume()  # a producer waiting in drain() sees `closed`
            self.local = None
        if notify:
            self.down.done(self, self.ended)

    def __repr__(self) -> str:
        return f"<Exchange {self.head!r} state={states.NAMES[self.state]} status={self.status}>"


# Kept for readers of the state constants through this module.
__all__ = ["BACKOFF", "CONNECTING", "DONE", "Exchange", "FILTERING", "HEAD", "STREAMING",
           "WAITING"]


def _answer(ex: Exchange, reply: Reply) -> None:
    """`Exchange.reply`: a local reply, made here or ready beforehand (a cache's stored head),
    through the response filters the request passed, then the client's stream."""
    if ex.fwd is not None:
        ex.fwd.abandon()
    if reply.handler is not None:
        _accept_websocket(ex, reply)
        return
    if reply.code is not None:
        ex.error_code = reply.code
    if reply.stream is not None:
        _stream_reply(ex, reply)
        return
    resp = reply.head
    status = reply.status
    if resp is None:
        status, body, fields = _reply_message(reply, ex.head)
        if status != reply.status:
            ex.grpc_status = fields[1][1]  # a gRPC call's: trailers-only (_grpc_reply)
        resp = ResponseHead(status, Headers(fields), len(body))
    else:
        body = reply.body
    ex.resp = resp
    ex.status = status
    ex._response_filters(resp)
    if ex.chain.response_body:
        body = ex._response_body(body, True)
        if ex.state == DONE:
            return
    ex.down.send_head(resp, ex.head)
    if body and ex.head.method != "HEAD":
        ex.down.send_data(body)
    ex.down.send_end(None)
    ex._close(notify=True)


def _accept_websocket(ex: Exchange, reply: Reply) -> None:
    """A filter accepted the handshake (`Reply.websocket`): the checks and the 101 are
    `local_ws`'s; the connection holds the tunnel slot until it closes; the exchange ends
    with 101 (`upgraded`)."""
    route, handler = ex.route, reply.handler
    refused = local_ws.refusal(ex.head, route, reply)
    if refused is not None:
        ex.fail(refused.code, refused.detail)
        return
    assert route is not None and route.websocket is not None and handler is not None
    if ex.reserved is None:
        ex.reserved = upgrade.reserve(ex.factory.websocket, route)
        if ex.reserved is None:
            ex.fail("websocket_limit")
            return
    resp = local_ws.switching_head(ex.head, reply)
    ex._response_filters(resp)
    if not ex.down.accept_websocket(resp, ex.head, handler, route.websocket, ex.reserved):
        ex.fail("shutting_down")  # the worker began draining, or the client is going
        return
    _switched(ex, resp)


def _switched(ex: Exchange, resp: ResponseHead) -> None:
    """The 101 went out: the tunnel (or the accepted connection) holds the route's slot now,
    and the exchange ends with status 101."""
    ex.reserved = None
    ex.to(STREAMING)
    ex.resp = resp
    ex.status = 101
    ex._close(notify=True)


def _detail(reply: Reply, code: str) -> str:
    """What a local error reply says: the filter's detail, else the catalogue's meaning of
    `code`, else the status's reason phrase."""
    entry = ERRORS.get(code)
    return reply.detail or (entry.meaning if entry is not None else
                            REASONS.get(reply.status, b"Error").decode())

def _grpc_reply(reply: Reply, request_type: bytes
                ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """A gRPC call's local reply: trailers-only, HTTP 200, the gRPC status of the error."""
    code = reply.code or f"http_{reply.status}"
    detail = _detail(reply, code)
    status = status_for(reply.code, reply.status)
    fields = [f for f in reply.fields if f[0].lower() != b"content-type"]
    answer = trailers_only(request_type, status, code, detail, fields)
    answer.append((DATE, http_date()))
    return 200, b"", answer


def _reply_message(reply: Reply, head: RequestHead
                   ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """A local reply's status, body and fields: for a catalogue error (`Reply.error`), the
    gateway's problem document (RFC 9457, with code, request id and trace id) ahead of the
    reply's own fields; for an error to a gRPC call, a trailers-only answer (`_grpc_reply`);
    `Date` unless the reply set its own."""
    if reply.status >= 400:
        request_type = head.headers.first(b"content-type")
        if request_type is not None and request_type.startswith(b"application/grpc"):
            return _grpc_reply(reply, request_type)
    fields = list(reply.fields)
    if not any(n == DATE for n, _ in fields):
        fields.append((DATE, http_date()))
    code = reply.code
    if code is None:
        return reply.status, reply.body, fields
    detail = _detail(reply, code)
    body = error_body(code, head.request_id, detail, getattr(head.trace, "trace_id", None),
                      reply.status)
    fields.insert(0, (b"content-type", PROBLEM_JSON))
    return reply.status, body, fields


def _stream_reply(ex: Exchange, reply: Reply) -> None:
    """Send the head of a reply whose body `reply.stream` writes, then run it (streamed.py)."""
    _, _, fields = _reply_message(reply, ex.head)
    resp = ex.resp = ResponseHead(reply.status, Headers(fields), STREAMED)
    ex.status = reply.status
    ex._response_filters(resp)
    ex.to(STREAMING)
    ex.down.set_deadline(NO_DEADLINE)  # a stream lasts while the client stays
    ex.down.send_head(resp, ex.head)
    ex.local = StreamedReply.run(ex, reply)
