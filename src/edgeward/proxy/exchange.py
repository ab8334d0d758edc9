"""One request's trip through the gateway: route, admit, pick, forward, stream back, account.

An Exchange is driven entirely by callbacks: from the listener (`start`, `on_request_body`,
`on_request_end`, `on_deadline`, downstream flow control) and from the upstream connection
(`UpstreamOwner`). No task is created per request unless a new upstream connection must be
opened. The listener side is reached only through the `Downstream` methods, so HTTP/2 and
WebSocket listeners can drive the same exchange; `down` is typed with the one listener there
is, which lets the compiled build call it directly instead of by name.

States:  NEW -> CONNECTING -> WAITING -> STREAMING -> DONE
             \\________________\\_________\\__________/ (local reply or abort, at any point)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Final, Protocol

from edgeward.http.client import WRITE_HIGH, UpstreamConnection, request_head
from edgeward.http.message import NO_BODY, STREAMED, RequestHead
from edgeward.ratelimit.decision import Decision, response_headers, response_lines
from edgeward.ratelimit.limiter import LocalLimiter
from edgeward.resilience.outcome import Outcome

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.http.client import UpstreamOwner
    from edgeward.http.server import HttpConnection
    from edgeward.proxy.cluster import Cluster
    from edgeward.proxy.route import Route
    from edgeward.proxy.snapshot import Snapshot

NEW: Final = 0
CONNECTING: Final = 1
WAITING: Final = 2
STREAMING: Final = 3
DONE: Final = 4
NO_DEADLINE: Final = math.inf  # set_deadline(NO_DEADLINE): nothing to enforce for now

log = logging.getLogger("edgeward.proxy")

# Governance and latency figures need sub-millisecond time; uvloop's loop.time() is cached per
# loop iteration in whole milliseconds. Both are CLOCK_MONOTONIC, so deadlines computed from
# this clock are valid for loop.call_at (at most a millisecond apart).
_clock: Final = time.monotonic

_CONNECT_FAILURE: Final = Outcome.of_error("connect_failure")
_TIMEOUT: Final = Outcome.of_error("timeout")
_RESET: Final = Outcome.of_error("reset")
_BY_STATUS: Final = [Outcome.of_status(s) for s in range(100, 600)]

# Methods whose request may be sent twice without changing the outcome (RFC 9110 §9.2.2).
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class Downstream(Protocol):
    """What an exchange needs from the listener that owns the client connection."""

    loop: asyncio.AbstractEventLoop

    def send_head(
        self, ex: Exchange, status: int, head: bytes, body_length: int, extra: bytes,
    ) -> None: ...
    def send_continue(self) -> None: ...
    def send_body(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def send_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None: ...
    def local_reply(
        self, ex: Exchange, code: str, message: str | None,
        extra_headers: list[tuple[bytes, bytes]] | None,
    ) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self, reason: int) -> None: ...
    def resume_reading(self, reason: int) -> None: ...
    def set_deadline(self, when: float) -> None: ...
    def exchange_done(self, ex: Exchange) -> None: ...


if TYPE_CHECKING:
    # `down` and `owner` are typed concretely for direct calls; these keep mypy checking that
    # the listener and the exchange still provide the interfaces documented above.
    def _listener_is_downstream(conn: HttpConnection) -> Downstream:
        return conn

    def _exchange_is_upstream_owner(ex: Exchange) -> UpstreamOwner:
        return ex


# Reasons a listener stops reading from its client (a bit each).
PAUSE_UPSTREAM_FULL: Final = 1    # the upstream's write buffer is above its high-water mark
PAUSE_PENDING_BODY: Final = 2     # body bytes waiting for an upstream connection exceed WRITE_HIGH


class Exchange:
    __slots__ = (
        "down", "head", "snapshot", "route", "cluster", "endpoint", "upstream", "state",
        "pending", "pending_size", "replay", "replay_size", "request_done", "body_received",
        "total_deadline", "connect_task", "race_retried", "status", "error_code",
        "bytes_out", "upstream_paused", "started", "attempt", "attempt_started",
        "upstream_time", "held", "admitted", "resend", "is_retry", "limit_decision",
        "released", "connect_time", "holds_slot", "ended", "read_now",
    )

    def __init__(self, down: HttpConnection, head: RequestHead, snapshot: Snapshot) -> None:
        self.down = down
        self.head = head
        self.snapshot = snapshot
        self.route: Route | None = None
        self.cluster: Cluster | None = None
        self.endpoint: Endpoint | None = None
        self.upstream: UpstreamConnection | None = None
        self.state = NEW
        self.pending: list[bytes] | None = None  # body parts waiting for a connection
        self.pending_size = 0
        # Body parts kept for a resend; replay_size -1 once the body outgrew replay_limit.
        self.replay: list[bytes] | None = None
        self.replay_size = 0
        self.request_done = head.body_length == NO_BODY
        self.body_received = 0
        self.total_deadline = 0.0
        self.connect_task: asyncio.Future[UpstreamConnection] | None = None
        self.race_retried = False
        self.status = 0
        self.error_code: str | None = None
        self.bytes_out = 0
        self.upstream_paused = False
        self.started = 0.0          # loop time the exchange started
        self.attempt = 0            # tries so far (1 = the first)
        self.attempt_started = 0.0
        self.upstream_time = 0.0    # from the last try's dispatch to its response head
        self.held: asyncio.Handle | asyncio.Future[Decision] | None = None
        self.admitted = False       # holds a breaker permit not yet settled
        self.resend = False         # the next bind must replay the body sent so far
        self.is_retry = False       # counted in cluster.active_retries
        self.limit_decision: Decision | None = None
        self.released = False
        self.holds_slot = False     # holds one of the route's max_concurrent slots
        self.connect_time = 0.0     # TCP connect of the last new upstream connection
        self.ended = 0.0            # clock when the exchange finished
        # The clock read at the response head, while the upstream read that carried it is
        # still being handled (0 after): a response that ends in the same read ends then.
        self.read_now = 0.0

    # listener-facing ----------------------------------------------------------------------
    def start(self) -> None:
        head = self.head
        route = self.snapshot.match(head)
        if route is None:
            self.fail("route_not_found")
            return
        self.route = route
        limit = route.max_body_size
        if limit is not None and head.body_length > limit:
            self.fail("payload_too_large")
            return
        now = self.started = _clock()
        if route.timeout is not None:
            self.total_deadline = now + route.timeout
        limiter = route.limiter
        if limiter is not None:
            key_spec = route.limit_key
            key = key_spec.extract(head, route.name) if key_spec is not None else None
            decision: Decision | None
            if type(limiter) is LocalLimiter:  # narrowed: a direct call when compiled
                decision = limiter.decide_sync(key or head.client_ip, now)
            else:
                decision = limiter.decide_sync(key or head.client_ip, now)
            if decision is None:  # a shared (Redis) limit: wait for its answer
                fut = asyncio.ensure_future(limiter.decide(key or head.client_ip, now))
                self.held = fut
                fut.add_done_callback(self._on_decision)
                return
            self._decided(decision)
            return
        self._admitted()

    def _on_decision(self, fut: asyncio.Future[Decision]) -> None:
        self.held = None
        if self.state == DONE or fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            # The limiter applies on_store_failure itself; anything else is a bug, and a
            # limiter bug must not take the route down: admit and let the log show it.
            log.error("rate limiter failed on route %s: %r", self.route, exc)
            self._admitted()
            return
        self._decided(fut.result())

    def _decided(self, decision: Decision) -> None:
        route = self.route
        assert route is not None and route.limiter is not None
        self.limit_decision = decision
        if not decision.allowed:
            self.fail("rate_limited",
                      extra_headers=response_headers(decision, route.limiter.window))
            return
        if decision.delay > 0:  # leaky bucket without nodelay: hold the request in the queue
            self.held = self.down.loop.call_later(decision.delay, self._released)
            return
        self._admitted()

    def _released(self) -> None:
        self.held = None
        if self.state != DONE:
            self._admitted()

    def _admitted(self) -> None:
        route = self.route
        head = self.head
        assert route is not None
        concurrency = route.concurrency
        if concurrency is not None:
            if not concurrency.try_acquire():
                self.fail("overloaded")
                return
            self.holds_slot = True
        self.cluster = cluster = route.choose(head)
        cluster.active_requests += 1
        if head.expect_continue and not self.request_done:
            self.down.send_continue()
        self.dispatch()

    def on_request_body(self, data: bytes) -> None:
        if self.state == DONE:
            return
        self.body_received += len(data)
        route = self.route
        if route is not None and route.max_body_size is not None:
            if self.body_received > route.max_body_size:
                self.fail("payload_too_large")
                return
        if self.head.body_length == STREAMED:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._forward_body(data)
        if self.state == WAITING:
            self._arm_body_deadline(_clock())

    def on_request_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        if self.state == DONE or self.request_done:
            return  # finished, or a request without a body (complete from the start)
        self.request_done = True
        if self.head.body_length == STREAMED:
            tail = b"".join(n + b": " + v + b"\r\n" for n, v in trailers) if trailers else b""
            self._forward_body(b"0\r\n" + tail + b"\r\n")
        if self.state == WAITING:
            self._arm_response_deadline()

    def on_deadline(self, now: float) -> None:
        state = self.state
        if state == CONNECTING:
            if self.connect_task is not None:
                self.connect_task.cancel()
            if self._settle(_CONNECT_FAILURE, now):
                return
            self.fail("upstream_connect_failed", "timed out connecting to the upstream")
        elif state == WAITING and not self.request_done and not (
                self.total_deadline and now >= self.total_deadline):
            # The body stopped coming: the client stalled, unless the upstream was the one
            # not reading (then the client was paused by the gateway).
            self._drop_upstream(abort=True)
            if self.upstream_paused:
                self.fail("upstream_timeout", "the upstream stopped reading the request body")
            else:
                self.fail("request_timeout", "the request body stopped arriving")
        elif state == WAITING:
            self._drop_upstream(abort=True)
            if self._settle(_TIMEOUT, now):
                return
            self.fail("upstream_timeout")
        elif state == STREAMING:
            self.error_code = "upstream_timeout"
            self._drop_upstream(abort=True)
            self.down.abort()
            self._finish()

    def on_downstream_paused(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def on_downstream_resumed(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def cancel(self) -> None:
        """The client went away: release everything this exchange holds."""
        if self.state == DONE:
            return
        if self.connect_task is not None:
            self.connect_task.cancel()
        self.error_code = self.error_code or "client_closed"
        self._drop_upstream(abort=True)
        self.state = DONE
        self._release()

    # forwarding ------------------------------------------------------------------------------
    def dispatch(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        assert self.route is not None
        # The first try goes out in the same callback the exchange started in.
        now = self.started if self.attempt == 0 and not self.held else _clock()
        pick = cluster.pick_plain
        endpoint = (pick(None, now) if pick is not None
                    else cluster.pick(self.head, self.route.name, now))
        if endpoint is None:
            self.fail("no_healthy_upstream")
            return
        if cluster.guarded and not cluster.admit(endpoint, now):
            self.fail("circuit_open")
            return
        self.admitted = True
        self.endpoint = endpoint
        self.attempt += 1
        self.attempt_started = now
        conn = cluster.pools[endpoint].take()
        if conn is not None:
            self._bind(conn, now)
            return
        self._connect(endpoint)

    def _connect(self, endpoint: Endpoint) -> None:
        cluster = self.cluster
        assert cluster is not None
        loop = self.down.loop
        self.state = CONNECTING
        self.connect_time = now = _clock()
        self._set_deadline(now + cluster.connect_timeout)
        task = loop.create_task(cluster.pools[endpoint].connect())
        self.connect_task = task
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Future[UpstreamConnection]) -> None:
        self.connect_task = None
        if task.cancelled():
            return
        exc = task.exception()
        if self.state != CONNECTING:
            if exc is None:
                task.result().detach(reusable=True)
            return
        self.connect_time = _clock() - self.connect_time
        if exc is not None:
            if self._settle(_CONNECT_FAILURE, _clock()):
                return
            # The client learns the upstream's name, never its internal addresses.
            log.info("connect to %r failed: %r", self.endpoint, exc)
            self.fail("upstream_connect_failed",
                      f"could not connect to upstream {self.cluster.name if self.cluster else ''}")
            return
        self._bind(task.result())

    def _bind(self, conn: UpstreamConnection, now: float = 0.0) -> None:
        """Send the request on `conn`; `now` when the caller just read the clock."""
        head = self.head
        cluster = self.cluster
        endpoint = self.endpoint
        assert cluster is not None and endpoint is not None
        self.upstream = conn
        endpoint.active += 1
        data = request_head(head.wire, head.method, head.body_length)
        if self.pending:
            data += b"".join(self.pending)
            self.pending = None
            self.pending_size = 0
            self.down.resume_reading(PAUSE_PENDING_BODY)
        elif self.resend and self.replay:
            data += b"".join(self.replay)
        self.resend = False
        self.state = WAITING
        self._arm_response_deadline(now)
        conn.start(self, data, head.method == "HEAD")

    def _arm_response_deadline(self, now: float = 0.0) -> None:
        """Wait for the response head: response_header_timeout (or per_try_timeout) counted
        from the end of the request, as Envoy does, so a slow upload is not cut; while the
        body is still arriving, server.body_timeout bounds each wait for more of it."""
        if not self.request_done:
            self._arm_body_deadline(now or _clock())
            return
        cluster, route = self.cluster, self.route
        assert cluster is not None and route is not None
        wait = cluster.response_header_timeout
        per_try = route.per_try_timeout
        if per_try is not None and per_try < wait:
            wait = per_try
        deadline = (now or _clock()) + wait
        if self.total_deadline and self.total_deadline < deadline:
            deadline = self.total_deadline
        self.down.set_deadline(deadline)

    def _arm_body_deadline(self, now: float) -> None:
        """The request body is still arriving: the next part of it (or, while the upstream is
        not reading, room to send it) must come within body_timeout, and the route's total
        timeout still applies."""
        deadline = now + self.down.state.settings.body_timeout
        total = self.total_deadline
        if total and total < deadline:
            deadline = total
        self.down.set_deadline(deadline)

    def _forward_body(self, data: bytes) -> None:
        if self.replay_size >= 0:
            size = self.replay_size + len(data)
            route = self.route
            limit = route.replay_limit if route is not None else self.snapshot.replay_limit
            if size <= limit:
                self.replay_size = size
                replay = self.replay
                if replay is None:
                    self.replay = [data]
                else:
                    replay.append(data)
            else:
                self.replay_size = -1
                self.replay = None
        conn = self.upstream
        if conn is not None:
            conn.write(data)
        else:
            pending = self.pending
            if pending is None:
                self.pending = [data]
            else:
                pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > WRITE_HIGH:
                self.down.pause_reading(PAUSE_PENDING_BODY)

    # UpstreamOwner ---------------------------------------------------------------------------
    def on_response_head(self, status: int, head: bytes, body_length: int) -> None:
        now = self.read_now = _clock()
        self.upstream_time = now - self.attempt_started
        outcome = _BY_STATUS[status - 100] if 100 <= status <= 599 else Outcome.of_status(status)
        if status >= 500 and self._may_retry(outcome):
            self._drop_upstream(abort=True)
            self._settle(outcome, now)
            return
        self._record(outcome, now)
        decision = self.limit_decision
        extra = b""
        if decision is not None and self.route is not None and self.route.limiter is not None:
            # RateLimit-* on admitted responses too (IETF RateLimit fields), so clients can
            # pace themselves before they are refused.
            extra = response_lines(decision, self.route.limiter.window)
        self.state = STREAMING
        self.status = status
        self.down.set_deadline(self.total_deadline or NO_DEADLINE)
        self.down.send_head(self, status, head, body_length, extra)

    def on_response_body(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.down.send_body(data)

    def on_response_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            self._release_endpoint()
            conn.detach(reusable=self.request_done)
        self.down.send_end(trailers)
        self._finish()

    def on_upstream_lost(self, got_bytes: bool, error: str) -> None:
        conn = self.upstream
        self.upstream = None
        if conn is None:
            return
        self._release_endpoint()
        if self.state == STREAMING:
            self.error_code = error
            self.down.abort()
            self._finish()
            return
        if self._may_resend(conn, got_bytes):
            # The keep-alive race: a pooled connection closed as we reused it, before any
            # response byte. Safe to send again, once, on a fresh connection.
            self.race_retried = True
            self.resend = True
            assert self.endpoint is not None
            self._connect(self.endpoint)
            return
        if self._settle(_RESET, _clock()):
            return
        self.fail(error)

    def on_upstream_read_done(self) -> None:
        self.read_now = 0.0
        self.down.flush()

    def on_upstream_paused(self) -> None:
        if not self.upstream_paused:
            self.upstream_paused = True
            self.down.pause_reading(PAUSE_UPSTREAM_FULL)
            if self.state == WAITING and not self.request_done:
                self._arm_body_deadline(_clock())  # the upstream must take more in time

    def on_upstream_resumed(self) -> None:
        if self.upstream_paused:
            self.upstream_paused = False
            self.down.resume_reading(PAUSE_UPSTREAM_FULL)
            if self.state == WAITING and not self.request_done:
                self._arm_body_deadline(_clock())  # and now the client must send more

    # governance ------------------------------------------------------------------------------
    def _record(self, outcome: Outcome, now: float) -> None:
        """Feed this try's outcome to the breaker, outlier detection and balancer, once."""
        if not self.admitted:
            return
        self.admitted = False
        cluster, endpoint = self.cluster, self.endpoint
        if cluster is not None and endpoint is not None:
            cluster.record(endpoint, outcome, now - self.attempt_started, now)

    def _may_retry(self, outcome: Outcome) -> bool:
        route, cluster = self.route, self.cluster
        if route is None or cluster is None or route.retry is None or self.state == DONE:
            return False
        head = self.head
        if not route.retry.should_retry(self.attempt, outcome, head.method, self._replayable()):
            return False
        if self.total_deadline and _clock() >= self.total_deadline:
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
        if not self._may_retry(outcome):
            return False
        route, cluster = self.route, self.cluster
        assert route is not None and route.retry is not None and cluster is not None
        if not self.is_retry:
            self.is_retry = True
            cluster.active_retries += 1
        cluster.retries += 1
        self.state = NEW
        self.resend = True
        delay = route.retry.backoff(self.attempt, self.snapshot.rng)
        self.held = self.down.loop.call_later(delay, self._retry)
        return True

    def _retry(self) -> None:
        self.held = None
        if self.state == NEW:
            self.dispatch()

    # endings -----------------------------------------------------------------------------------
    def fail(self, code: str, message: str | None = None,
             extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer with the gateway's own JSON error (or abort if the response has begun)."""
        if self.state == DONE:
            return
        self.error_code = code
        self._drop_upstream(abort=True)
        if self.state == STREAMING:
            self.down.abort()
        else:
            self.down.local_reply(self, code, message, extra_headers)
        self._finish()

    def _may_resend(self, conn: UpstreamConnection, got_bytes: bool) -> bool:
        if not conn.reused or got_bytes or self.race_retried:
            return False
        if self.head.method not in IDEMPOTENT:
            return False
        return self._replayable()

    def _replayable(self) -> bool:
        """The whole request can be sent again: it has no body, or all of it was kept."""
        return self.head.body_length == NO_BODY or (self.request_done and self.replay_size >= 0)

    def _release_endpoint(self) -> None:
        if self.endpoint is not None:
            self.endpoint.active -= 1

    def _drop_upstream(self, abort: bool) -> None:
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            self._release_endpoint()
            if abort:
                conn.abort()
            else:
                conn.close()

    def _set_deadline(self, when: float) -> None:
        if when:
            self.down.set_deadline(when)

    def _finish(self) -> None:
        self.ended = self.read_now or _clock()
        self.state = DONE
        self._release()
        self.down.exchange_done(self)

    def _release(self) -> None:
        """Give back everything the exchange holds: slots, counters, breaker permits."""
        held = self.held
        if held is not None:
            self.held = None
            held.cancel()
        cluster = self.cluster
        if cluster is not None and not self.released:
            self.released = True
            if self.admitted:
                self.admitted = False
                now = _clock()
                cluster.release(self.endpoint, now, now - self.attempt_started)
            cluster.active_requests -= 1
            if self.is_retry:
                self.is_retry = False
                cluster.active_retries -= 1
        if self.holds_slot:
            self.holds_slot = False
            route = self.route
            if route is not None and route.concurrency is not None:
                route.concurrency.release()

    def __repr__(self) -> str:
        return f"<Exchange {self.head!r} state={self.state} status={self.status}>"
