"""The composition root: from a validated GatewayConfig to a running Snapshot.

Compiling builds the clusters, limiters and routes a config names, reusing stateful objects
(breaker windows, limiter buckets, pools) from the `Registry` when their config is unchanged,
so a reload keeps their state.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any, TypeVar

from edgeward.config.loader import ConfigError, Problem
from edgeward.config.schema import GatewayConfig, UpstreamConfig
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.route import Route
from edgeward.proxy.snapshot import Snapshot
from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.limiter import Limiter, build_local_limiter
from edgeward.ratelimit.redis_store import GlobalLimiter
from edgeward.ratelimit.redis_store import connect as connect_redis
from edgeward.resilience.retry import RetryBudget, RetryPolicy
from edgeward.routing.split import TrafficSplit
from edgeward.routing.table import RouteTable

T = TypeVar("T")


class Registry:
    """Stateful objects keyed by a stable name plus their own config.

    A reload that leaves an upstream's (or a limiter's) config unchanged gets the same object
    back, with its breaker window, limiter buckets, health and pools intact.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], Any] = {}
        self._used: set[tuple[str, str, str]] = set()

    def get(self, kind: str, name: str, config: object, make: Callable[[], T]) -> T:
        key = (kind, name, repr(config))
        self._used.add(key)
        item = self._items.get(key)
        if item is None:
            item = make()
            self._items[key] = item
        return item  # type: ignore[no-any-return,unused-ignore]

    def begin(self) -> None:
        self._used = set()

    def commit(self) -> list[Any]:
        """Forget objects the new snapshot no longer uses; returns them for closing."""
        gone = [v for k, v in self._items.items() if k not in self._used]
        self._items = {k: v for k, v in self._items.items() if k in self._used}
        return gone

    def rollback(self) -> None:
        self._used = set(self._items)


def _route(cfg: GatewayConfig, index: int, name: str, split: TrafficSplit[Cluster],
           single: Cluster | None, loop: asyncio.AbstractEventLoop,
           registry: Registry) -> Route:
    rc = cfg.routes[index]
    limiter: Limiter | None = None
    limit_key = None
    rl = rc.rate_limit
    if rl is not None:
        limit_key = rl.key_spec()
        if rl.scope == "global":
            assert cfg.redis is not None
            redis_cfg = cfg.redis
            client = registry.get("redis", "default", redis_cfg, lambda: connect_redis(redis_cfg))
            limiter = registry.get(
                "limiter", name, (rl, redis_cfg),
                lambda: _global_limiter(client, name, rl, redis_cfg, loop))
        else:
            limiter = registry.get("limiter", name, rl, lambda: build_local_limiter(rl))
    concurrency = None
    if rc.max_concurrent is not None:
        max_concurrent = rc.max_concurrent
        concurrency = registry.get("concurrency", name, max_concurrent,
                                   lambda: ConcurrencyLimiter(max_concurrent))
    retry = budget = None
    if rc.retries is not None:
        retry = RetryPolicy(rc.retries)
        if rc.retries.budget is not None:
            budget = RetryBudget(rc.retries.budget)
    return Route(name, split=split, cluster=single, timeout=rc.timeout,
                 max_body_size=rc.max_body_size, limiter=limiter, limit_key=limit_key,
                 concurrency=concurrency, retry=retry, budget=budget,
                 replay_limit=cfg.server.replay_limit)


def _global_limiter(client: Any, name: str, rl: RateLimitConfig, redis_cfg: RedisConfig,
                    loop: asyncio.AbstractEventLoop) -> GlobalLimiter:
    limiter = GlobalLimiter(client, route=name, config=rl, redis=redis_cfg)
    if loop.is_running():
        loop.create_task(limiter.prepare())
    return limiter


def _maker(name: str, up: UpstreamConfig, loop: asyncio.AbstractEventLoop,
           rng: random.Random) -> Callable[[], Cluster]:
    return lambda: Cluster(name, up, loop, rng)


def compile_snapshot(
    cfg: GatewayConfig,
    loop: asyncio.AbstractEventLoop,
    registry: Registry,
    *,
    source: str = "<config>",
    source_hash: str = "",
    rng: random.Random | None = None,
) -> Snapshot:
    """Build a Snapshot; ConfigError (with key paths) for what only compiling can find."""
    rng = rng or random.Random()
    registry.begin()
    try:
        clusters: dict[str, Cluster] = {}
        for name, up in cfg.upstreams.items():
            clusters[name] = registry.get("cluster", name, up, _maker(name, up, loop, rng))
        routes: list[Route] = []
        table_entries = []
        for i, rc in enumerate(cfg.routes):
            name = cfg.route_name(i)
            if rc.split is not None:
                try:
                    split = TrafficSplit.from_config(rc.split, clusters.__getitem__, rng)
                except ValueError as exc:
                    raise ConfigError(source, [Problem(f"routes[{i}].split", str(exc))]) from None
            else:
                assert rc.upstream is not None
                split = TrafficSplit.single(clusters[rc.upstream])
            single = clusters[rc.upstream] if rc.upstream is not None else None
            route = _route(cfg, i, name, split, single, loop, registry)
            routes.append(route)
            table_entries.append((rc.match, route))
        table = RouteTable(table_entries)
    except BaseException:
        registry.rollback()
        raise
    for old in registry.commit():
        if isinstance(old, Cluster):
            loop.call_later(0, old.close)
    return Snapshot(table.match, routes, clusters, replay_limit=cfg.server.replay_limit,
                    source_hash=source_hash)
