"""The upstream side of one exchange: pick, admit, connect, send, retry, and the outcome.

A Forwarder is the `ResponseHandler` of the client streams it opens for its exchange, one try
at a time. It keeps the request body that is waiting for a connection (`pending`, bounded: the
client is paused beyond it) and the part that can be sent again (`replay`, up to the route's
replay limit), feeds each try's outcome to the cluster's breaker, outlier detection and
balancer exactly once, and decides retries with the route's policy and budget.

Attribution (what counts against an endpoint): a try's outcome is recorded only once the
request was fully sent to it. A deadline that fires while the request body is still coming is
the client's (408 request_timeout, or 504 when the upstream stopped reading it), and the
try's breaker permit is given back without an outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from edgeward.http.message import NO_BODY, RequestHead, ResponseHead
from edgeward.http.stream import (
    PAUSE_PENDING_BODY,
    PAUSE_UPSTREAM_FULL,
    ClientStream,
    ResponseHandler,
    ServerStream,
    StreamHandler,
    Trailers,
)
from edgeward.proxy.context import ExchangeContext
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.states import BACKOFF, CONNECTING, DONE, STREAMING, WAITING
from edgeward.resilience.outcome import Outcome

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.proxy.cluster import Cluster
    from edgeward.proxy.route import Route

log = logging.getLogger("edgeward.proxy")

# Request body bytes held for a connection being opened before the client is paused; the
# codecs' write buffers pause at the same 64 KiB.
PENDING_LIMIT: Final = 64 * 1024

_CONNECT_FAILURE: Final = Outcome.of_error("connect_failure")
_TIMEOUT: Final = Outcome.of_error("timeout")
_RESET: Final = Outcome.of_error("reset")
_BY_STATUS: Final = [Outcome.of_status(s) for s in range(100, 600)]

# Methods whose request may be sent twice without changing the outcome (RFC 9110 §9.2.2).
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class Forwarding(StreamHandler):
    """What a Forwarder needs of its exchange (`edgeward.proxy.exchange.Exchange` is one)."""

    __slots__ = ("down", "head", "factory", "snapshot", "state", "started", "total_deadline",
                 "read_now")

    down: ServerStream
    head: RequestHead
    factory: ExchangeContext
    snapshot: Snapshot
    state: int
    started: float          # clock when the exchange started
    total_deadline: float   # the route timeout's deadline (0: none yet)
    read_now: float         # the clock read for the upstream read being handled (0: none)

    def to(self, new: int) -> None:
        raise NotImplementedError

    def fail(self, code: str, message: str | None = None,
             extra: list[tuple[bytes, bytes]] | None = None) -> None:
        raise NotImplementedError

    def response_head(self, resp: ResponseHead) -> None:
        raise NotImplementedError

    def response_data(self, data: bytes) -> None:
        raise NotImplementedError

    def response_end(self, trailers: Trailers) -> None:
        raise NotImplementedError


class Forwarder(ResponseHandler):
    __slots__ = (
        "ex", "route", "cluster", "endpoint", "upstream", "pending", "pending_size", "replay",
        "replay_size", "ended", "trailers", "connect_task", "race_retried", "attempt",
        "attempt_started", "upstream_time", "connect_time", "admitted", "resend", "is_retry",
        "upstream_paused", "retry_handle", "counted",
    )

    def __init__(self, ex: Forwarding) -> None:
        self.ex = ex
        self.route: Route | None = None
        self.cluster: Cluster | None = None
        self.endpoint: Endpoint | None = None
        self.upstream: ClientStream | None = None
        self.pending: list[bytes] | None = None  # body parts waiting for a connection
        self.pending_size = 0
        self.replay: list[bytes] | None = None   # body parts kept for a resend
        self.replay_size = 0
        # The whole request has been handed over (from the start when it has no body).
        self.ended = ex.head.body_length == NO_BODY
        self.trailers: Trailers = None
        self.connect_task: asyncio.Future[ClientStream] | None = None
        self.race_retried = False
        self.attempt = 0             # tries so far (1 = the first)
        self.attempt_started = 0.0
        self.upstream_time = 0.0     # from the last try's dispatch to its response head
        self.connect_time = 0.0      # TCP connect of the last new upstream connection
        self.admitted = False        # holds a breaker permit not yet settled
        self.resend = False          # the next bind must replay the body sent so far
        self.is_retry = False        # counted in cluster.active_retries
        self.upstream_paused = False
        self.retry_handle: asyncio.TimerHandle | None = None
        self.counted = False         # counted in cluster.active_requests

    # from the exchange ---------------------------------------------------------------------
    def begin(self, cluster: Cluster, route: Route) -> None:
        self.cluster = cluster
        self.route = route
        cluster.active_requests += 1
        self.counted = True
        self.dispatch(self.ex.started)

    def send_body(self, data: bytes) -> None:
        route = self.route
        if self.replay_size >= 0:
            size = self.replay_size + len(data)
            limit = route.replay_limit if route is not None else self.ex.snapshot.replay_limit
            if size <= limit:
                self.replay_size = size
                if self.replay is None:
                    self.replay = [data]
                else:
                    self.replay.append(data)
            else:
                self.replay_size = -1
                self.replay = None
        conn = self.upstream
        if conn is not None:
            conn.send_data(data)
            if self.ex.state == WAITING and not self.ended:
                self._arm_body_deadline(self.ex.factory.clock())
            return
        if self.pending is None:
            self.pending = [data]
        else:
            self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > PENDING_LIMIT:
            self.ex.down.pause_reading(PAUSE_PENDING_BODY)

    def send_end(self, trailers: Trailers) -> None:
        self.ended = True
        self.trailers = trailers
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
        pick = cluster.pick_plain
        endpoint = (pick(None, now) if pick is not None
                    else cluster.pick(ex.head, ex.head.route_name, now))
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
            log.info("connect to %r failed: %r", self.endpoint, exc)
            name = self.cluster.name if self.cluster is not None else ""
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
        conn.send_head(ex.head, self)
        parts = self.replay if self.resend else self.pending
        self.resend = False
        if self.pending is not None:
            self.pending = None
            self.pending_size = 0
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
        if status >= 500 and self._may_retry(outcome, now):
            self._drop_upstream()
            self._settle(outcome, now)
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
        if self._may_resend(conn, got_bytes):
            # The keep-alive race: a pooled connection closed as we reused it, before any
            # response byte. Safe to send again, once, on a fresh connection.
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

    # governance ------------------------------------------------------------------------------
    def _record(self, outcome: Outcome, now: float) -> None:
        """Feed this try's outcome to the breaker, outlier detection and balancer, once."""
        if not self.admitted:
            return
        self.admitted = False
        cluster, endpoint = self.cluster, self.endpoint
        if cluster is not None and endpoint is not None:
            cluster.record(endpoint, outcome, now - self.attempt_started, now)

    def _give_back_permit(self, now: float) -> None:
        """End the try without an outcome (it was not the endpoint's doing)."""
        if self.admitted:
            self.admitted = False
            cluster = self.cluster
            if cluster is not None:
                cluster.release(self.endpoint, now, now - self.attempt_started)

    def _may_retry(self, outcome: Outcome, now: float) -> bool:
        route, cluster, ex = self.route, self.cluster, self.ex
        if route is None or cluster is None or route.retry is None or ex.state == DONE:
            return False
        if not route.retry.should_retry(self.attempt, outcome, ex.head.method,
                                        self._replayable()):
            return False
        if ex.total_deadline and now >= ex.total_deadline:
            return False
        budget = route.budget
        if budget is not None and not self.is_retry and not budget.try_acquire(
                cluster.active_requests, cluster.active_retries):
            return False
        return True

    def _settle(self, outcome: Outcome, now: float) -> bool:
        """Record a failed try; when the route's retry policy allows, schedule the next try
        and return True (the caller then stops); else return False."""
        self._record(outcome, now)
        if not self._may_retry(outcome, now):
            return False
        route, cluster, ex = self.route, self.cluster, self.ex
        assert route is not None and route.retry is not None and cluster is not None
        if not self.is_retry:
            self.is_retry = True
            cluster.active_retries += 1
        cluster.retries += 1
        ex.to(BACKOFF)
        self.resend = True
        delay = route.retry.backoff(self.attempt, ex.snapshot.rng)
        self.retry_handle = ex.down.loop.call_later(delay, self._retry)
        return True

    def _retry(self) -> None:
        self.retry_handle = None
        if self.ex.state == BACKOFF:
            self.dispatch(self.ex.factory.clock())

    def _may_resend(self, conn: ClientStream, got_bytes: bool) -> bool:
        if not conn.reused or got_bytes or self.race_retried:
            return False
        if self.ex.head.method not in IDEMPOTENT:
            return False
        return self._replayable()

    def _replayable(self) -> bool:
        """The whole request can be sent again: it has no body, or all of it was kept."""
        return self.ex.head.body_length == NO_BODY or (self.ended and self.replay_size >= 0)

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
        cluster = self.cluster
        if cluster is not None and self.counted:
            self.counted = False
            self._give_back_permit(now)
            cluster.active_requests -= 1
            if self.is_retry:
                self.is_retry = False
                cluster.active_retries -= 1

    def __repr__(self) -> str:
        return f"<Forwarder attempt={self.attempt} endpoint={self.endpoint!r}>"

