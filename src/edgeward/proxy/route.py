"""A compiled route: what a matched request gets — limits, timeouts, retries, destination."""

from __future__ import annotations

from edgeward.config.schema import DEFAULT_REPLAY_LIMIT
from edgeward.http.message import RequestHead
from edgeward.proxy.cluster import Cluster
from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.keys import KeySpec as RateLimitKey
from edgeward.ratelimit.limiter import Limiter
from edgeward.resilience.retry import RetryBudget, RetryPolicy
from edgeward.routing.split import TrafficSplit


class Route:
    __slots__ = (
        "name", "timeout", "max_body_size", "split", "limiter", "limit_key", "concurrency",
        "retry", "budget", "per_try_timeout", "replay_limit", "cluster", "metrics",
    )

    def __init__(
        self,
        name: str,
        *,
        split: TrafficSplit[Cluster],
        cluster: Cluster | None = None,
        timeout: float | None,
        max_body_size: int | None,
        limiter: Limiter | None = None,
        limit_key: RateLimitKey | None = None,
        concurrency: ConcurrencyLimiter | None = None,
        retry: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        replay_limit: int = DEFAULT_REPLAY_LIMIT,
    ) -> None:
        self.name = name
        self.split = split
        self.cluster = cluster  # the one upstream of a route without a split (fast path)
        self.metrics: object | None = None  # telemetry's cached children for this route
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.limiter = limiter
        self.limit_key = limit_key
        self.concurrency = concurrency
        self.retry = retry
        self.budget = budget
        self.per_try_timeout = retry.cfg.per_try_timeout if retry is not None else None
        # Bodies up to this size are kept for a resend: the retry policy's limit on routes with
        # retries, else server.replay_limit (enough for the keep-alive race).
        self.replay_limit = (retry.cfg.replay_body_limit if retry is not None
                             else replay_limit)

    def choose(self, head: RequestHead) -> Cluster:
        cluster = self.cluster
        return cluster if cluster is not None else self.split.choose(head, self.name)

    def __repr__(self) -> str:
        return f"<Route {self.name}>"
