"""A compiled route: its filter chain, its destination, and what the exchange enforces itself
(timeouts, retries, the replay limit, WebSocket upgrades)."""

from __future__ import annotations

from edgeward.http.listener import DEFAULT_REPLAY_LIMIT
from edgeward.http.tunnel import TunnelSettings
from edgeward.proxy.chain import EMPTY, Chain
from edgeward.proxy.cluster import Cluster
from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.limiter import Limiter
from edgeward.resilience.retry import RetryBudget, RetryPolicy


class Route:
    __slots__ = (
        "name", "chain", "cluster", "timeout", "retry", "budget", "per_try_timeout",
        "replay_limit", "metrics", "limiter", "concurrency", "upstream_name", "described",
        "websocket", "grpc", "grpc_retry",
    )

    def __init__(
        self,
        name: str,
        *,
        cluster: Cluster | None,
        chain: Chain = EMPTY,
        timeout: float | None,
        retry: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        replay_limit: int = DEFAULT_REPLAY_LIMIT,
        limiter: Limiter | None = None,
        concurrency: ConcurrencyLimiter | None = None,
        websocket: TunnelSettings | None = None,
        grpc: bool = False,
    ) -> None:
        self.name = name
        self.chain = chain
        # The upstream, unless the chain chooses it (a split sets the request's `upstream`).
        self.cluster = cluster
        self.upstream_name: str | None = cluster.name if cluster is not None else None
        self.metrics: object | None = None  # telemetry's cached children for this route
        self.timeout = timeout  # from the end of the request to the end of the response
        self.retry = retry
        self.budget = budget
        self.per_try_timeout = retry.cfg.per_try_timeout if retry is not None else None
        # Bodies up to this size are kept for a resend: the retry policy's limit on routes with
        # retries, else server.replay_limit (enough for the keep-alive race).
        self.replay_limit = (retry.cfg.replay_body_limit if retry is not None
                             else replay_limit)
        # The governance objects in the chain, for the admin API's /ratelimits.
        self.limiter = limiter
        self.concurrency = concurrency
        # WebSocket handshakes are accepted (their tunnels so set) only with this.
        self.websocket = websocket
        # A route matching `grpc:`: grpc-timeout sets each try's deadline (and goes upstream
        # reduced by the time spent), grpc-status is counted, `retries.grpc_on` applies.
        self.grpc = grpc
        self.grpc_retry: frozenset[bytes] = (
            retry.grpc_statuses if retry is not None and grpc else frozenset())
        # (name, kind, order) of each filter in chain order, for the admin API's /routes.
        self.described: tuple[tuple[str, str, int], ...] = tuple(
            (f.name, f.name, int(type(f).order)) for f in chain.filters)

    def __repr__(self) -> str:
        return f"<Route {self.name}>"
