"""The composition root: from a validated GatewayConfig to a running Snapshot.

Compiling builds the clusters, limiters and routes a config names, reusing stateful objects
(breaker windows, limiter buckets, pools) from the `Registry` when their config is unchanged,
so a reload keeps their state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from edgeward.auth.context import AuthContext, SubrequestFailed, SubResponse
from edgeward.auth.directory import ConsumerDirectory
from edgeward.balance.locality import selector_of
from edgeward.cache.runtime import CacheRuntime, Prewarm
from edgeward.canary.run import CanaryBook, CanaryRun
from edgeward.config.schema import GatewayConfig, UpstreamConfig
from edgeward.devices.http_api import DeviceApi
from edgeward.devices.sessions import DeviceSessions
from edgeward.devices.store import ShadowStore
from edgeward.filters.api import Filter
from edgeward.filters.cache import Cache
from edgeward.filters.config import (
    BuildContext,
    FilterSpec,
    read_definitions,
    read_route_filters,
)
from edgeward.filters.events import FilterEvents
from edgeward.filters.governance import BodyLimit, Concurrency, ConsumerLimits, RateLimit, Split
from edgeward.filters.subset import Chain as SubsetChain
from edgeward.http.h1.client import TlsOrigin
from edgeward.proxy.chain import Chain
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.route import Route
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.subrequest import SubrequestError, fetch, make_head
from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.limiter import Limiter, build_local_limiter
from edgeward.ratelimit.redis_client import connect as connect_redis
from edgeward.ratelimit.redis_store import GlobalLimiter
from edgeward.resilience.retry import RetryBudget, RetryPolicy
from edgeward.routing.config import SplitEntryConfig
from edgeward.routing.split import TrafficSplit
from edgeward.routing.table import RouteTable
from edgeward.structs import ConfigError, Problem
from edgeward.tls.certs import TlsError
from edgeward.tls.context import client_context

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

    def of_kind(self, kind: str) -> list[Any]:
        """The objects of one kind the registry keeps (for metrics)."""
        return [v for (k, _, _), v in self._items.items() if k == kind]

    def begin(self) -> None:
        self._used = set()

    def commit(self) -> list[Any]:
        """Forget objects the new snapshot no longer uses; returns them for closing."""
        gone = [v for k, v in self._items.items() if k not in self._used]
        self._items = {k: v for k, v in self._items.items() if k in self._used}
        return gone

    def rollback(self) -> None:
        self._used = set(self._items)


class Subrequests:
    """`AuthContext.subrequest` over the clusters of the snapshot in force: the request goes
    to the named upstream with Host set to that name (as nginx's proxy_pass to an upstream)."""

    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}

    async def __call__(self, upstream: str, method: str, target: str,
                       fields: list[tuple[str, str]], timeout: float) -> SubResponse:
        cluster = self.clusters.get(upstream)
        if cluster is None:
            raise SubrequestFailed("no_healthy_upstream", f"no upstream named {upstream!r}")
        head = make_head(method, target, upstream, fields)
        try:
            got = await fetch(cluster, head, timeout=timeout)
        except SubrequestError as exc:
            raise SubrequestFailed(exc.code, str(exc)) from None
        return SubResponse(got.status, got.head.headers.items(), got.body)


def auth_context(registry: Registry) -> AuthContext:
    """The worker's authentication context (one for the worker's life, kept by the registry:
    its consumers and subrequest clusters are updated in place by each compile)."""
    return registry.get("auth", "context", None,
                        lambda: AuthContext(ConsumerDirectory(), Subrequests()))


def _consumer_limits(cfg: GatewayConfig, name: str, rl: RateLimitConfig,
                     loop: asyncio.AbstractEventLoop, registry: Registry) -> ConsumerLimits:
    """Per-consumer limiters of a route limited by consumer, kept while its limit is."""
    redis_cfg = cfg.redis

    def make(consumer: str, rate: float, burst: int) -> Limiter:
        own = dataclasses.replace(rl, rate=rate, burst=burst)
        if own.scope == "global" and redis_cfg is not None:
            client = registry.get("redis", "default", redis_cfg,
                                  lambda: connect_redis(redis_cfg))
            return _global_limiter(client, f"{name}/consumer/{consumer}", own, redis_cfg, loop)
        return build_local_limiter(own)

    return registry.get("consumer_limits", name, (rl, redis_cfg), lambda: ConsumerLimits(make))
def filter_events(registry: Registry) -> FilterEvents:
    """The worker's filter event counts: one object for the registry's life (reloads keep
    counting on it), read by telemetry when metrics are read."""
    return registry.get("filter_events", "worker", None, FilterEvents)


def canary_book(registry: Registry) -> CanaryBook:
    """The worker's canary runs: one book for the registry's life; each compile that
    succeeds installs the runs of its routes."""
    return registry.get("canary_book", "worker", None, CanaryBook)
def cache_runtime(registry: Registry) -> CacheRuntime:
    """The worker's cache: one for the registry's life (a reload keeps what it stored)."""
    return registry.get("cache", "runtime", None,
                        lambda: CacheRuntime(filter_events(registry)))


def _cache(cfg: GatewayConfig, registry: Registry) -> CacheRuntime:
    """The cache runtime configured for `cfg` (bounds, and the Redis client of the fleet)."""
    runtime = cache_runtime(registry)
    cc = cfg.cache
    runtime.configure(cc.max_size, cc.max_entry_size, cc.prewarm_concurrency)
    redis_cfg = cfg.redis
    runtime.redis = None
    if (cc.fleet is not None or cc.shared is not None) and redis_cfg is not None:
        runtime.redis = registry.get("redis", "default", redis_cfg,
                                     lambda: connect_redis(redis_cfg))
    runtime.set_shared(runtime.redis, cc.shared)
    return runtime


def _wire_caches(runtime: CacheRuntime, routes: list[Route], clusters: dict[str, Cluster]
                 ) -> None:
    caches = [f for r in routes for f in r.chain.filters if isinstance(f, Cache)]
    prewarms = [Prewarm(c, *c.prewarm) for c in caches if c.prewarm is not None]
    runtime.clusters = clusters
    runtime.set_routes(caches, prewarms)


def _governance(cfg: GatewayConfig, index: int, name: str, rng: random.Random,
                loop: asyncio.AbstractEventLoop, registry: Registry
                ) -> tuple[list[Filter], Limiter | None, ConcurrencyLimiter | None]:
    """The built-in filters a route's own keys ask for (body limit, rate limit, concurrency
    limit, split), with their stateful objects from the registry."""
    rc = cfg.routes[index]
    filters: list[Filter] = []
    if rc.max_body_size is not None:
        filters.append(BodyLimit(rc.max_body_size))
    limiter: Limiter | None = None
    rl = rc.rate_limit
    if rl is not None:
        if rl.scope == "global":
            assert cfg.redis is not None
            redis_cfg = cfg.redis
            client = registry.get("redis", "default", redis_cfg, lambda: connect_redis(redis_cfg))
            limiter = registry.get(
                "limiter", name, (rl, redis_cfg),
                lambda: _global_limiter(client, name, rl, redis_cfg, loop))
        else:
            limiter = registry.get("limiter", name, rl, lambda: build_local_limiter(rl))
        overrides = (_consumer_limits(cfg, name, rl, loop, registry)
                     if rl.key == "consumer" else None)
        filters.append(RateLimit(limiter, rl.key_spec(), name, overrides))
    concurrency = None
    if rc.max_concurrent is not None:
        max_concurrent = rc.max_concurrent
        concurrency = registry.get("concurrency", name, max_concurrent,
                                   lambda: ConcurrencyLimiter(max_concurrent))
        filters.append(Concurrency(concurrency))
    if rc.split is not None:
        try:
            split = TrafficSplit.from_entries(rc.split, split_value, rng)
        except ValueError as exc:
            raise ConfigError("<config>", [Problem(f"routes[{index}].split", str(exc))]) from None
        filters.append(Split(split, name))
    canary = rc.canary
    if canary is not None:
        book = canary_book(registry)
        run = registry.get("canary", name, canary,
                           lambda: CanaryRun(name, canary, rng, time.monotonic(), book.totals))
        book.pending[name] = run
        filters.append(run.make_filter(rng))
    return filters, limiter, concurrency


def _user_filters(cfg: GatewayConfig, index: int, registry: Registry, source: str,
                  ctx: BuildContext) -> list[tuple[Filter, str]]:
    """The route's `filters:` list, built (an unchanged filter keeps its instance), each with
    its kind."""
    problems: list[tuple[str, str]] = []
    named = read_definitions(cfg.filters, problems)
    path = f"routes[{index}].filters"
    specs = read_route_filters(cfg.routes[index].filters, path, named, problems)
    if problems:  # schema checks caught these already; a config built in code may not be
        raise ConfigError(source, [Problem(p, r) for p, r in problems])
    built: list[tuple[Filter, str]] = []
    for j, spec in enumerate(specs):
        shared = isinstance(cfg.routes[index].filters[j], str)
        key = spec.name if shared else f"{cfg.route_name(index)}[{j}]"
        # What the filter is built from beyond its config: the upstreams it names (a changed
        # upstream is a new cluster object) and the listener's head limit.
        identity = (spec, [(u, cfg.upstreams.get(u)) for _, u in spec.upstreams()],
                    ctx.max_header_bytes)
        try:
            f = registry.get("filter", key, identity, _builder(spec, ctx))
        except (ValueError, OSError) as exc:  # a built-in's precise refusal (unreadable file)
            raise ConfigError(source, [Problem(f"{path}[{j}]", str(exc))]) from None
        except Exception as exc:  # noqa: BLE001 - a user's constructor: report, do not crash
            raise ConfigError(source, [Problem(f"{path}[{j}]",
                                               f"the filter could not be built: {exc!r}")]
                              ) from None
        built.append((f, spec.kind if spec.cls is None else f"python:{spec.cls!r}"))
    return built


def _builder(spec: FilterSpec, ctx: BuildContext) -> Callable[[], Filter]:
    return lambda: spec.build(ctx)


def device_store(cfg: GatewayConfig, registry: Registry) -> ShadowStore:
    """The worker's shadow store: on the limiters' Redis client (one per worker)."""
    redis_cfg, devices = cfg.redis, cfg.devices
    assert redis_cfg is not None  # the config check requires redis: for devices
    client = registry.get("redis", "default", redis_cfg, lambda: connect_redis(redis_cfg))
    return registry.get("device_store", "default", (redis_cfg, devices),
                        lambda: ShadowStore(client, devices))


def _device_limiter(cfg: GatewayConfig, name: str, rl: RateLimitConfig | None,
                    loop: asyncio.AbstractEventLoop, registry: Registry) -> Limiter | None:
    """A per-device limiter of the device mode (keyed by device id), kept across reloads
    that leave its config alone: `scope: global` on the top-level Redis."""
    redis_cfg = cfg.redis
    if rl is None:
        return None
    if rl.scope == "global":
        assert redis_cfg is not None  # the config check requires redis: for devices
        client = registry.get("redis", "default", redis_cfg, lambda: connect_redis(redis_cfg))
        return registry.get("limiter", name, (rl, redis_cfg),
                            lambda: _global_limiter(client, name, rl, redis_cfg, loop))
    return registry.get("limiter", name, rl, lambda: build_local_limiter(rl))


def device_sessions(cfg: GatewayConfig, loop: asyncio.AbstractEventLoop,
                    registry: Registry) -> DeviceSessions:
    """The worker's WebSocket device sessions (with the change feed they, long polls and
    delta streams wait on)."""
    store = device_store(cfg, registry)
    limiter = _device_limiter(cfg, "(devices.session)", cfg.devices.session_rate_limit, loop,
                              registry)
    return registry.get("device_sessions", "default", (cfg.redis, cfg.devices),
                        lambda: DeviceSessions(store, limiter))


def _mqtt_bridge(cfg: GatewayConfig, loop: asyncio.AbstractEventLoop,
                 registry: Registry) -> None:
    """The worker's MQTT bridge (docs/devices.md), started once the loop runs; a config
    whose `redis:` and `devices:` are unchanged keeps the running one."""
    from edgeward.devices.mqtt_bridge import MqttBridge  # aiomqtt: only when configured

    store = device_store(cfg, registry)
    mqtt = cfg.devices.mqtt
    assert mqtt is not None
    limiter = _device_limiter(cfg, "(devices.mqtt)", mqtt.rate_limit, loop, registry)
    bridge = registry.get("mqtt_bridge", "default", (cfg.redis, cfg.devices),
                          lambda: MqttBridge(store, cfg.devices, limiter))
    loop.call_soon(bridge.start)


def _terminal(cfg: GatewayConfig, index: int, source: str, registry: Registry,
              loop: asyncio.AbstractEventLoop) -> list[tuple[Filter, str]]:
    """The filter a route without an upstream ends in (`redirect:`, `respond:`, `devices:`)."""
    rc = cfg.routes[index]
    if rc.devices is not None:
        sessions = device_sessions(cfg, loop, registry)
        return [(DeviceApi(sessions.store, rc.devices, sessions), "devices")]
    try:
        if rc.redirect is not None:
            return [(rc.redirect.build(rc.match.path_prefix), "redirect")]
        if rc.respond is not None:
            return [(rc.respond.build(), "respond")]
    except ValueError as exc:  # the respond file went away since it was checked
        raise ConfigError(source, [Problem(f"routes[{index}].respond.file", str(exc))]
                          ) from None
    return []


def _route(cfg: GatewayConfig, index: int, clusters: dict[str, Cluster], rng: random.Random,
           loop: asyncio.AbstractEventLoop, registry: Registry, source: str,
           ctx: BuildContext) -> Route:
    rc = cfg.routes[index]
    name = cfg.route_name(index)
    governance, limiter, concurrency = _governance(cfg, index, name, rng, loop, registry)
    described = [(f, f.name) for f in governance]
    described += _user_filters(cfg, index, registry, source, ctx)
    described += _terminal(cfg, index, source, registry, loop)
    kinds = {id(f): kind for f, kind in described}
    chain = Chain([f for f, _ in described])
    retry = budget = None
    if rc.retries is not None:
        retry = RetryPolicy(rc.retries)
        if rc.retries.budget is not None:
            budget = RetryBudget(rc.retries.budget)
    single = clusters[rc.upstream] if rc.upstream is not None else None
    route = Route(name, cluster=single, chain=chain, timeout=rc.timeout,
                  retry=retry, budget=budget, replay_limit=cfg.server.replay_limit,
                  limiter=limiter, concurrency=concurrency,
                  websocket=rc.websocket.settings() if rc.websocket is not None else None,
                  grpc=rc.match.grpc is not None)
    route.described = tuple((f.name, kinds[id(f)], int(type(f).order)) for f in chain.filters)
    return route


def _global_limiter(client: Any, name: str, rl: RateLimitConfig, redis_cfg: RedisConfig,
                    loop: asyncio.AbstractEventLoop) -> GlobalLimiter:
    limiter = GlobalLimiter(client, route=name, config=rl, redis=redis_cfg)
    if loop.is_running():
        loop.create_task(limiter.prepare())
    return limiter


def _maker(name: str, up: UpstreamConfig, loop: asyncio.AbstractEventLoop,
           rng: random.Random, source: str, zone: str) -> Callable[[], Cluster]:
    return lambda: Cluster(name, up, loop, rng, tls=upstream_tls(name, up, source), zone=zone)


def split_value(entry: SplitEntryConfig) -> tuple[str, SubsetChain | None]:
    """A split entry's choice: its upstream, and its label subset (docs/locality.md)."""
    if not entry.labels:
        return entry.upstream, None
    return entry.upstream, (selector_of(entry.labels),)


def gateway_zone(cfg: GatewayConfig) -> str:
    """The gateway's zone: server.zone, else EDGEWARD_ZONE, else "" (zone routing off)."""
    return cfg.server.zone or os.environ.get("EDGEWARD_ZONE", "")


def upstream_tls(name: str, up: UpstreamConfig, source: str) -> TlsOrigin | None:
    """The TLS origin of an upstream with `tls:` (files read and checked now), else None;
    ConfigError naming the key and the file when a CA or client pair is refused."""
    if up.tls is None:
        return None
    try:
        ctx = client_context(up.tls, f"upstreams.{name}.tls", time.time())
    except TlsError as exc:
        raise ConfigError(source, exc.problems) from None
    if up.protocol == "h2":
        ctx.set_alpn_protocols(["h2"])  # the only protocol its pools speak
    return TlsOrigin(ctx, up.tls.server_name, ctx.sessions)  # type: ignore[arg-type]


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
    book = canary_book(registry)
    book.pending = {}
    try:
        auth = auth_context(registry)
        environ = dict(os.environ)
        consumers, problems = auth.consumers.prepare(cfg.consumers, environ)
        if problems:
            raise ConfigError(source, [Problem(p, r) for p, r in problems])
        auth.upstreams = frozenset(cfg.upstreams)
        auth.environ = environ
        clusters: dict[str, Cluster] = {}
        zone = gateway_zone(cfg)
        for name, up in cfg.upstreams.items():
            clusters[name] = registry.get("cluster", name, (up, zone),
                                           _maker(name, up, loop, rng, source, zone))
        cache = _cache(cfg, registry)
        ctx = BuildContext(clusters=clusters, fetch=fetch, events=filter_events(registry),
                           max_header_bytes=cfg.server.max_header_bytes, rng=rng,
                           auth=auth, cache=cache)
        routes: list[Route] = []
        table_entries = []
        for i, rc in enumerate(cfg.routes):
            route = _route(cfg, i, clusters, rng, loop, registry, source, ctx)
            routes.append(route)
            table_entries.append((rc.match, route))
        table = RouteTable(table_entries)
    except BaseException:
        registry.rollback()
        raise
    if cfg.devices.mqtt is not None:
        _mqtt_bridge(cfg, loop, registry)
    subrequests = auth.subrequest
    if isinstance(subrequests, Subrequests):
        subrequests.clusters = clusters
    auth.consumers.install_static(consumers)
    book.runs, book.pending, book.clusters = book.pending, {}, clusters
    _wire_caches(cache, routes, clusters)
    for old in registry.commit():
        if isinstance(old, Cluster):
            loop.call_later(0, old.close)
        elif hasattr(old, "stop_bridge"):
            old.stop_bridge()
    return Snapshot(table.match, routes, clusters, replay_limit=cfg.server.replay_limit,
                    source_hash=source_hash)
