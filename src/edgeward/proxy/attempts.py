"""The tries of one exchange: what counts against an endpoint, and whether to try again.

`Attempts` is the base of `Forwarder` (which does the I/O of each try): it feeds each try's
outcome to the cluster's breaker, outlier detection and balancer exactly once, gives a permit
back without an outcome when a try ends through no fault of the endpoint, and decides retries
with the route's policy and budget (the keep-alive race's one resend included).
`Forwarding` is what a forwarder needs of its exchange.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from edgeward.http.message import NO_BODY, RequestHead, ResponseHead
from edgeward.http.stream import ClientStream, ServerStream, StreamHandler, Trailers
from edgeward.proxy.body import RequestBody
from edgeward.proxy.context import ExchangeContext
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.states import BACKOFF, DONE
from edgeward.resilience.outcome import Outcome

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.proxy.cluster import Cluster
    from edgeward.proxy.route import Route
    from edgeward.resilience.retry import RetryPolicy

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

    def switch(self, resp: ResponseHead, conn: ClientStream) -> None:
        """The upstream answered a handshake with 101 on `conn` (no longer the forwarder's)."""
        raise NotImplementedError


class Attempts(RequestBody):
    __slots__ = ("ex", "route", "cluster", "endpoint", "attempt", "attempt_started", "admitted",
                 "resend", "is_retry", "race_retried", "retry_handle", "counted")

    def __init__(self, ex: Forwarding) -> None:
        super().__init__(ex.head.body_length == NO_BODY)
        self.ex = ex
        self.route: Route | None = None
        self.cluster: Cluster | None = None
        self.endpoint: Endpoint | None = None
        self.attempt = 0             # tries so far (1 = the first)
        self.attempt_started = 0.0
        self.admitted = False        # holds a breaker permit not yet settled
        self.resend = False          # the next try must replay the body sent so far
        self.is_retry = False        # counted in cluster.active_retries
        self.race_retried = False    # the keep-alive race's one resend was used
        self.retry_handle: asyncio.TimerHandle | None = None
        self.counted = False         # counted in cluster.active_requests

    def dispatch(self, now: float) -> None:
        """Start a try (the forwarder's)."""
        raise NotImplementedError

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
                                        self.replayable()):
            return False
        if ex.total_deadline and now >= ex.total_deadline:
            return False
        budget = route.budget
        if budget is not None and not self.is_retry and not budget.try_acquire(
                cluster.active_requests, cluster.active_retries):
            return False
        return True

    def _settle_grpc(self, resp: ResponseHead, outcome: Outcome, now: float) -> bool:
        """A trailers-only answer (status 200) with a grpc-status in the route's
        `retries.grpc_on`: like `_settle`, on the gRPC rule (any method, while attempts and
        the body allow)."""
        route, cluster, ex = self.route, self.cluster, self.ex
        if route is None or not route.grpc_retry or cluster is None or route.retry is None:
            return False
        if ex.state == DONE or resp.headers.first(b"grpc-status") not in route.grpc_retry:
            return False
        if not route.retry.should_retry_grpc(self.attempt, self.replayable()):
            return False
        if ex.total_deadline and now >= ex.total_deadline:
            return False
        budget = route.budget
        if budget is not None and not self.is_retry and not budget.try_acquire(
                cluster.active_requests, cluster.active_retries):
            return False
        self._record(outcome, now)
        self._schedule(route.retry, cluster)
        return True

    def _settle(self, outcome: Outcome, now: float) -> bool:
        """Record a failed try; when the route's retry policy allows, schedule the next try
        and return True (the caller then stops); else return False."""
        self._record(outcome, now)
        if not self._may_retry(outcome, now):
            return False
        route, cluster = self.route, self.cluster
        assert route is not None and route.retry is not None and cluster is not None
        self._schedule(route.retry, cluster)
        return True

    def _schedule(self, retry: RetryPolicy, cluster: Cluster) -> None:
        ex = self.ex
        if not self.is_retry:
            self.is_retry = True
            cluster.active_retries += 1
        cluster.retries += 1
        ex.to(BACKOFF)
        self.resend = True
        delay = retry.backoff(self.attempt, ex.snapshot.rng)
        self.retry_handle = ex.down.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self.retry_handle = None
        if self.ex.state == BACKOFF:
            self.dispatch(self.ex.factory.clock())

    def _may_resend(self, conn: ClientStream, got_bytes: bool, error: str) -> bool:
        if self.race_retried:
            return False
        if error == "upstream_refused":
            # Not processed by the HTTP/2 upstream (RFC 9113 §8.7): any method.
            return self.replayable()
        if not conn.reused or got_bytes:
            return False
        if self.ex.head.method not in IDEMPOTENT:
            return False
        return self.replayable()

    def _give_back_counts(self, now: float) -> None:
        """The exchange is over: its permit, its place among active requests and retries."""
        cluster = self.cluster
        if cluster is not None and self.counted:
            self.counted = False
            self._give_back_permit(now)
            cluster.active_requests -= 1
            if self.is_retry:
                self.is_retry = False
                cluster.active_retries -= 1
