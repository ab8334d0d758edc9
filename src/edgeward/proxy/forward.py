"""The upstream side of one exchange: pick, admit, connect, send, retry, and the outcome.

A Forwarder is the `ResponseHandler` of the client streams it opens for its exchange, one try
at a time. It keeps the request body that is waiting for a connection and the part that can be
sent again, feeds each try's outcome to the cluster's breaker, outlier detection and
balancer exactly once, and decides retries with the route's policy and budget.

Attribution (what counts against an endpoint): a try's outcome is recorded only once the
request was fully sent to it. A deadline that fires while the request body is still coming is
the client's (408 request_timeout, or 504 when the upstream stopped reading it), and the
try's breaker permit is given back without an outcome.

The body's bookkeeping (what waits for a connection, what can be sent again) is the base class
`RequestBody` (proxy/body.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Final

from edgeward.grpc.status import format_timeout, parse_timeout
from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.stream import (
    PAUSE_PENDING_BODY,
    PAUSE_UPSTREAM_FULL,
    ClientStream,
    Trailers,
)
from edgeward.proxy.attempts import Attempts, Forwarding
from edgeward.proxy.connect_failures import record_connect_failure
from edgeward.proxy.states import BACKOFF, CONNECTING, STREAMING, WAITING
from edgeward.resilience.outcome import Outcome

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.proxy.cluster import Cluster
    from edgeward.proxy.route import Route

log = logging.getLogger("edgeward.proxy")

_CONNECT_FAILURE: Final = Outcome.of_error("connect_failure")
_TIMEOUT: Final = Outcome.of_error("timeout")
_RESET: Final = Outcome.of_error("reset")
_BY_STATUS: Final = [Outcome.of_status(s) for s in range(100, 600)]



class Forwarder(Attempts):
    __slots__ = ("upstream", "connect_task", "upstream_time", "connect_time", "upstream_paused",
                 "call_deadline")

    def __init__(self, ex: Forwarding) -> None:
        super().__init__(ex)
        self.upstream: ClientStream | None = None
        self.connect_task: asyncio.Future[ClientStream] | None = None
        self.upstream_time = 0.0     # from the last try's dispatch to its response head
        self.connect_time = 0.0      # TCP connect of the last new upstream connection
        self.upstream_paused = False
        self.call_deadline = 0.0     # a gRPC call's deadline from its grpc-timeout (0: none)

    # from the exchange ---------------------------------------------------------------------
    def begin(self, cluster: Cluster, route: Route) -> None:
        self.cluster = cluster
        self.route = route
        cluster.active_requests += 1
        self.counted = True
        if route.grpc:
            self.call_deadline = _call_deadline(self.ex)
        self.dispatch(self.ex.started)

    def send_body(self, data: bytes) -> None:
        route = self.route
        self.keep(data, route.replay_limit if route is not None else self.ex.snapshot.replay_limit)
        conn = self.upstream
        if conn is not None:
            conn.send_data(data)
            if self.ex.state == WAITING and not self.ended:
                self._arm_body_deadline(self.ex.factory.clock())
        elif self.hold(data):
            self.ex.down.pause_reading(PAUSE_PENDING_BODY)

    def send_end(self, trailers: Trailers) -> None:
        self.ended = True
        self.trailers = trailers
        if self.call_deadline:  # a gRPC call's own deadline, within the route timeout
            _bound(self.ex, self.call_deadline)
        conn = self.upstream
        if conn is not None:
            conn.send_end(trailers)
            if self.ex.state == WAITING:
                self._arm_response_deadline(0.0)

    def pause_response(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_response(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # tries -----------------------------------------------------------------------------------
    def dispatch(self, now: float) -> None:
        cluster = self.cluster
        ex = self.ex
        assert cluster is not None
        head = ex.head
        subset = head.subset
        if subset is not None:
            endpoint = cluster.pick_subsets(head, head.route_name, now, subset)
            if endpoint is None:
                ex.fail("no_subset_endpoint" if None not in subset else "no_healthy_upstream")
                return
        else:
            pick = cluster.pick_plain
            endpoint = (pick(None, now) if pick is not None
                        else cluster.pick(head, head.route_name, now))
            if endpoint is None:
                ex.fail("no_healthy_upstream")
                return
        if cluster.guarded and not cluster.admit(endpoint, now):
            ex.fail("circuit_open")
            return
        self.admitted = True
        self.endpoint = endpoint
        self.attempt += 1
        self.attempt_started = now
        conn = cluster.pools[endpoint].take()
        if conn is not None:
            self._bind(conn, now)
        else:
            self._connect(endpoint)

    def _connect(self, endpoint: Endpoint) -> None:
        cluster = self.cluster
        ex = self.ex
        assert cluster is not None
        ex.to(CONNECTING)
        self.connect_time = now = self.ex.factory.clock()
        ex.down.set_deadline(now + cluster.connect_timeout)
        task = ex.down.loop.create_task(cluster.pools[endpoint].connect())
        self.connect_task = task
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Future[ClientStream]) -> None:
        self.connect_task = None
        if task.cancelled():
            return
        exc = task.exception()
        ex = self.ex
        if ex.state != CONNECTING:
            if exc is None:
                task.result().release(reusable=True)
            return
        now = self.ex.factory.clock()
        self.connect_time = now - self.connect_time
        if exc is not None:
            if self._settle(_CONNECT_FAILURE, now):
                return
            # The client learns the upstream's name, never its internal addresses.
            record_connect_failure(self.cluster, self.endpoint, exc)  # logged by the upkeep
            name = self.cluster.name if self.cluster is not None else ""
            if isinstance(exc, ssl.SSLError):
                ex.fail("upstream_tls_error", f"TLS handshake with upstream {name} failed")
            else:
                ex.fail("upstream_connect_failed", f"could not connect to upstream {name}")
            return
        self._bind(task.result(), 0.0)

    def _bind(self, conn: ClientStream, now: float) -> None:
        """Send the request on `conn`; `now` when the caller just read the clock."""
        ex = self.ex
        endpoint = self.endpoint
        assert endpoint is not None
        self.upstream = conn
        endpoint.active += 1
        ex.to(WAITING)
        if self.call_deadline:  # what is left of it goes upstream: the service stops with it
            _propagate(ex.head, self.call_deadline - (now or self.ex.factory.clock()))
        conn.send_head(ex.head, self)
        pending = self.take_pending()
        parts = self.replay if self.resend else pending
        self.resend = False
        if pending is not None:
            ex.down.resume_reading(PAUSE_PENDING_BODY)
        if parts:
            for part in parts:
                conn.send_data(part)
        if self.ended:
            conn.send_end(self.trailers)
        self._arm_response_deadline(now)

    def _arm_response_deadline(self, now: float) -> None:
        """Wait for the response head: response_header_timeout (or per_try_timeout) counted
        from the end of the request, as Envoy does, so a slow upload is not cut; while the
        body is still arriving, server.body_timeout bounds each wait for more of it."""
        ex = self.ex
        if not self.ended:
            self._arm_body_deadline(now or self.ex.factory.clock())
            return
        cluster, route = self.cluster, self.route
        assert cluster is not None and route is not None
        wait = cluster.response_header_timeout
        per_try = route.per_try_timeout
        if per_try is not None and per_try < wait:
            wait = per_try
        deadline = (now or self.ex.factory.clock()) + wait
        if ex.total_deadline and ex.total_deadline < deadline:
            deadline = ex.total_deadline
        ex.down.set_deadline(deadline)

    def _arm_body_deadline(self, now: float) -> None:
        """The request body is still arriving: the next part of it (or, while the upstream is
        not reading, room to send it) must come within body_timeout."""
        ex = self.ex
        ex.down.set_deadline(now + ex.factory.settings.body_timeout)

    def on_deadline(self, now: float) -> None:
        ex = self.ex
        state = ex.state
        if state == CONNECTING:
            if self.connect_task is not None:
                self.connect_task.cancel()
            if self._settle(_CONNECT_FAILURE, now):
                return
            ex.fail("upstream_connect_failed", "timed out connecting to the upstream")
        elif state == WAITING and not self.ended:
            # The body stopped coming: the client stalled, unless the upstream was the one
            # not reading (then the gateway paused the client). Either way the request never
            # reached the upstream whole: nothing is recorded against the endpoint.
            self._drop_upstream()
            self._give_back_permit(now)
            if self.upstream_paused:
                ex.fail("upstream_timeout", "the upstream stopped reading the request body")
            else:
                ex.fail("request_timeout", "the request body stopped arriving")
        elif state == WAITING:
            self._drop_upstream()
            if self._settle(_TIMEOUT, now):
                return
            ex.fail("upstream_timeout")
        elif state == BACKOFF:
            ex.fail("upstream_timeout")

    # ResponseHandler -------------------------------------------------------------------------
    def on_response_head(self, resp: ResponseHead) -> None:
        ex = self.ex
        now = ex.read_now = self.ex.factory.clock()
        self.upstream_time = now - self.attempt_started
        status = resp.status
        outcome = _BY_STATUS[status - 100] if 100 <= status <= 599 else Outcome.of_status(status)
        if status == 101:  # only ever the answer to a handshake (the codec checks)
            self._switched(resp, outcome, now)
            return
        if status >= 500 and self._may_retry(outcome, now):
            self._drop_upstream()
            self._settle(outcome, now)
            return
        if status == 200 and self._settle_grpc(resp, outcome, now):
            self._drop_upstream()
            return
        self._record(outcome, now)
        ex.response_head(resp)

    def on_response_data(self, data: bytes) -> None:
        self.ex.response_data(data)

    def on_response_end(self, trailers: Trailers) -> None:
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            self._release_endpoint()
            conn.release(reusable=self.ended)
        self.ex.response_end(trailers)

    def on_upstream_lost(self, got_bytes: bool, error: str) -> None:
        conn = self.upstream
        self.upstream = None
        if conn is None:
            return
        self._release_endpoint()
        ex = self.ex
        if ex.state == STREAMING:
            ex.fail(error)  # the response was cut short: reset the client's stream
            return
        if self._may_resend(conn, got_bytes, error):
            # The keep-alive race: a pooled connection closed as we reused it, before any
            # response byte; or an HTTP/2 stream the upstream did not process. Safe to send
            # again, once, on a fresh connection.
            self.race_retried = True
            self.resend = True
            assert self.endpoint is not None
            self._connect(self.endpoint)
            return
        if self._settle(_RESET, self.ex.factory.clock()):
            return
        ex.fail(error)

    def on_upstream_read_done(self) -> None:
        self.ex.read_now = 0.0

    def on_upstream_paused(self) -> None:
        if not self.upstream_paused:
            self.upstream_paused = True
            ex = self.ex
            ex.down.pause_reading(PAUSE_UPSTREAM_FULL)
            if ex.state == WAITING and not self.ended:
                self._arm_body_deadline(self.ex.factory.clock())  # the upstream must take more

    def on_upstream_resumed(self) -> None:
        if self.upstream_paused:
            self.upstream_paused = False
            ex = self.ex
            ex.down.resume_reading(PAUSE_UPSTREAM_FULL)
            if ex.state == WAITING and not self.ended:
                self._arm_body_deadline(self.ex.factory.clock())  # and now the client must send

    def _switched(self, resp: ResponseHead, outcome: Outcome, now: float) -> None:
        """A 101: the try succeeded, and its connection leaves the forwarder for a tunnel
        (it no longer counts as a request in flight on the endpoint)."""
        conn = self.upstream
        self.upstream = None
        self._record(outcome, now)
        if conn is None:
            return
        self._release_endpoint()
        self.ex.switch(resp, conn)

    # endings -----------------------------------------------------------------------------------
    def _release_endpoint(self) -> None:
        if self.endpoint is not None:
            self.endpoint.active -= 1

    def _drop_upstream(self) -> None:
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            self._release_endpoint()
            conn.abort()

    def abandon(self) -> None:
        """The exchange answers without this try: drop whatever is in flight upstream."""
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        self._drop_upstream()

    def release(self, now: float) -> None:
        """Give back everything held: the connection, the retry timer, counters, permits."""
        self.abandon()
        handle = self.retry_handle
        if handle is not None:
            self.retry_handle = None
            handle.cancel()
        self._give_back_counts(now)

    def __repr__(self) -> str:
        return f"<Forwarder attempt={self.attempt} endpoint={self.endpoint!r}>"


def _call_deadline(ex: Forwarding) -> float:
    """A gRPC call's deadline from its grpc-timeout (0.0: none), which then bounds every try
    and the whole exchange."""
    value = ex.head.headers.first(b"grpc-timeout")
    timeout = parse_timeout(value) if value is not None else None
    if timeout is None:
        return 0.0
    _bound(ex, ex.started + timeout)
    return ex.started + timeout


def _bound(ex: Forwarding, deadline: float) -> None:
    if not ex.total_deadline or deadline < ex.total_deadline:
        ex.total_deadline = deadline


def _propagate(head: RequestHead, left: float) -> None:
    head.headers.set("grpc-timeout", format_timeout(left).decode())
