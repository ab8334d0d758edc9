"""The configuration file's shape: top-level keys, `server`, `upstreams.*` and `routes[]`.

Each section's own keys live beside the code that uses them (routing/config.py,
balance/options.py, resilience/, ratelimit/config.py, discovery/, observe/, admin/); this
module assembles them and checks the references between sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import edgeward.auth.kinds  # noqa: F401  (registers the authentication filter kinds)
from edgeward.admin.config import AdminConfig
from edgeward.auth.config import ConsumerConfig, check_consumer_name, client_cert_paths
from edgeward.balance.endpoint import MAX_WEIGHT
from edgeward.balance.locality import DEFAULT_MIN_CLUSTER_SIZE, DEFAULT_ROUTING_ENABLED
from edgeward.balance.options import (
    DEFAULT_ACTIVE_REQUEST_BIAS,
    DEFAULT_BALANCE,
    DEFAULT_EWMA_DECAY,
    DEFAULT_HASH_BALANCE_FACTOR,
    DEFAULT_PANIC_THRESHOLD,
    DEFAULT_RING_SIZE,
    BalanceKind,
    BalancerOptions,
)
from edgeward.cache.config import CacheConfig
from edgeward.canary.config import CanaryConfig
from edgeward.config.listeners import (
    ListenerConfig,
    address_problems,
    normalize_targets,
    served_listeners,
)
from edgeward.devices.config import DevicesConfig, RouteDevicesConfig
from edgeward.discovery.config import DiscoveryConfig
from edgeward.discovery.etcd import EtcdConfig
from edgeward.discovery.health import HealthConfig
from edgeward.filters.builtin.reply import RedirectConfig, RespondConfig
from edgeward.filters.config import read_definitions, read_entry, read_route_filters
from edgeward.http.h2.config import Http2Config
from edgeward.http.listener import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_PIPELINED,
    DEFAULT_MAX_REQUEST_LINE,
    DEFAULT_REPLAY_LIMIT,
)
from edgeward.observe.access_log import AccessLogConfig
from edgeward.observe.process_log import LoggingConfig
from edgeward.observe.tracing import TracingConfig
from edgeward.proxy.websocket_config import WebSocketConfig, expand_shorthand
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.resilience.breaker import BreakerConfig
from edgeward.resilience.outlier import OutlierConfig
from edgeward.resilience.retry import RetryConfig
from edgeward.routing.config import MatchConfig, SplitEntryConfig, split_problems
from edgeward.routing.keys import parse_key
from edgeward.tls.config import UpstreamTlsConfig
from edgeward.values import Address, Duration, Size, doc

# --- server: the client-facing listener (defaults and their precedents: http/listener.py) ---
PathNormalization = Literal["normalize", "reject", "off"]
UnderscoreAction = Literal["drop", "reject", "allow"]

# --- upstreams ---------------------------------------------------------------------------
# Envoy cluster connect_timeout default: 5 s.
DEFAULT_CONNECT_TIMEOUT = 5.0
# HAProxy deployments commonly run `timeout server 30s`; nginx's proxy_read_timeout is 60 s.
DEFAULT_RESPONSE_HEADER_TIMEOUT = 30.0
# Idle keep-alive connections kept per endpoint per worker (nginx `keepalive 64`-style).
DEFAULT_MAX_IDLE = 64
# nginx upstream keepalive_timeout default: 60 s.
DEFAULT_UPSTREAM_IDLE_TIMEOUT = 60.0
# HTTP/1.1 to upstreams unless asked (nginx proxy_http_version 1.1; Envoy clusters speak
# HTTP/1.1 unless http2_protocol_options is set; Traefik unless the scheme is h2c).
UpstreamProtocol = Literal["http1", "h2"]
DEFAULT_UPSTREAM_PROTOCOL: UpstreamProtocol = "http1"

# --- routes ------------------------------------------------------------------------------
# nginx proxy_read_timeout is 60 s and Envoy's route timeout 15 s; 60 s lets slow reports
# finish while bounding every request. `timeout: null` turns it off for long streams.
DEFAULT_ROUTE_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    zone: str | None = field(
        default=None,
        metadata=doc("the gateway's own zone for zone-aware routing (docs/locality.md); "
                     "null: EDGEWARD_ZONE, or no zone (zone routing off)"))
    header_timeout: Duration = field(
        default=DEFAULT_HEADER_TIMEOUT,
        metadata=doc("time to receive a request head; then 408 and close"))
    idle_timeout: Duration = field(
        default=DEFAULT_IDLE_TIMEOUT, metadata=doc("keep-alive idle time before closing"))
    body_timeout: Duration = field(
        default=DEFAULT_BODY_TIMEOUT,
        metadata=doc("longest wait between two reads of a request body (nginx "
                     "client_body_timeout); then 408 and close. While the upstream is the one "
                     "not reading, the same wait ends in 504 upstream_timeout"))
    max_request_line: Size = field(
        default=DEFAULT_MAX_REQUEST_LINE, metadata=doc("longest request target; else 414"))
    max_header_bytes: Size = field(
        default=DEFAULT_MAX_HEADER_BYTES, metadata=doc("largest request head; else 431"))
    max_headers: int = field(
        default=DEFAULT_MAX_HEADERS,
        metadata=doc("most fields in a request head (Envoy max_headers_count); else 431"))
    headers_with_underscores: UnderscoreAction = field(
        default="drop",
        metadata=doc("request fields named with `_`: drop (nginx underscores_in_headers off), "
                     "reject (400) or allow; CGI-style origins read `_` as `-`"))
    path_normalization: PathNormalization = field(
        default="normalize",
        metadata=doc("normalize paths before routing and forward them so (merge slashes, "
                     "resolve dot segments, decode unreserved escapes); reject: 400 for a "
                     "path not in normal form; off: route and forward as sent"))
    max_pipelined: int = field(
        default=DEFAULT_MAX_PIPELINED, metadata=doc("pipelined requests parsed ahead"))
    max_connections: int | None = field(
        default=None,
        metadata=doc("client connections open at once on each listener of a worker (nginx "
                     "worker_connections); more are closed as they are accepted, counted and "
                     "warned about. null: the open-file limit less an eighth (at least 64) "
                     "kept for upstream connections and files, so the worker refuses visibly "
                     "before it runs out of descriptors; 0: no cap"))
    drain_timeout: Duration = field(
        default=DEFAULT_DRAIN_TIMEOUT, metadata=doc("grace for in-flight requests on SIGTERM"))
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata=doc("CIDRs whose X-Forwarded-* are extended instead of replaced"))
    replay_limit: Size = field(
        default=DEFAULT_REPLAY_LIMIT, metadata=doc("largest request body kept for a resend"))
    client_cert_header: str | None = field(
        default=None,
        metadata=doc("request field that carries the verified client certificate of an mTLS "
                     "listener upstream (Envoy's x-forwarded-client-cert format); always "
                     "removed from what clients send; null: not sent"))
    http2: Http2Config = field(
        default_factory=Http2Config,
        metadata=doc("HTTP/2 from clients and its attack limits (docs/http2.md)"))

    def check(self) -> list[tuple[str, str]]:
        import ipaddress

        from edgeward.http.fields import check_name

        problems: list[tuple[str, str]] = []
        for i, net in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                problems.append((f"trusted_proxies[{i}]", f"not an IP network: {net!r}"))
        for key in ("header_timeout", "idle_timeout", "body_timeout", "drain_timeout"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        if self.max_pipelined < 1:
            problems.append(("max_pipelined", "must be at least 1"))
        if self.max_headers < 1:
            problems.append(("max_headers", "must be at least 1"))
        if self.max_connections is not None and self.max_connections < 0:
            problems.append(("max_connections", "must be 0 (no cap) or more"))
        if self.client_cert_header is not None:
            try:
                check_name(self.client_cert_header.lower())
            except ValueError as exc:
                problems.append(("client_cert_header", str(exc)))
        return problems


@dataclass(frozen=True, kw_only=True)
class ZoneAwareConfig:
    enabled: bool = field(
        default=True,
        metadata=doc("prefer the gateway's zone while it has enough healthy capacity; only "
                     "when the gateway has a zone (server.zone or EDGEWARD_ZONE)"))
    min_cluster_size: int = field(
        default=DEFAULT_MIN_CLUSTER_SIZE,
        metadata=doc("below this many available endpoints zone routing is off; 6 as Envoy "
                     "zone_aware_lb_config.min_cluster_size"))
    routing_enabled: float = field(
        default=DEFAULT_ROUTING_ENABLED * 100,
        metadata=doc("percent of requests that use zone routing; 100 as Envoy "
                     "zone_aware_lb_config.routing_enabled"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.min_cluster_size < 0:
            problems.append(("min_cluster_size", "must be 0 or more"))
        if not 0 <= self.routing_enabled <= 100:
            problems.append(("routing_enabled", "must be a percentage from 0 to 100"))
        return problems


@dataclass(frozen=True, kw_only=True)
class UpstreamConfig:
    targets: list[Address] = field(
        default_factory=list, metadata=doc("static HOST:PORT endpoints"))
    weights: dict[str, int] = field(
        default_factory=dict,
        metadata=doc("weight per target (HOST:PORT -> weight), default 1, at most 65535"))
    zones: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("zone per target (HOST:PORT -> zone), for zone-aware routing "
                     "(docs/locality.md); a target mapping's `zone:` lands here"))
    labels: dict[str, dict[str, str]] = field(
        default_factory=dict,
        metadata=doc("labels per target (HOST:PORT -> {key: value}), for label subsets "
                     "(docs/locality.md); a target mapping's `labels:` lands here"))
    zone_aware: ZoneAwareConfig = field(
        default_factory=ZoneAwareConfig,
        metadata=doc("zone-aware routing thresholds, used while the gateway has a zone "
                     "(server.zone or EDGEWARD_ZONE)"))
    discovery: DiscoveryConfig | None = field(
        default=None, metadata=doc("follow an etcd registry or DNS name instead of targets"))
    balance: BalanceKind = field(default=DEFAULT_BALANCE, metadata=doc("balancing algorithm"))
    hash_on: str | None = field(
        default=None,
        metadata=doc("key for ring_hash/maglev: client_ip, header:N, cookie:N, query:N, path"))
    hash_balance_factor: float | None = field(
        default=DEFAULT_HASH_BALANCE_FACTOR, metadata=doc("bounded-load factor for ring_hash"))
    active_request_bias: float = field(
        default=DEFAULT_ACTIVE_REQUEST_BIAS, metadata=doc("least_request weight bias"))
    panic_threshold: float = field(
        default=DEFAULT_PANIC_THRESHOLD,
        metadata=doc("below this available fraction, use every endpoint"))
    ewma_decay: Duration = field(default=DEFAULT_EWMA_DECAY, metadata=doc("peak_ewma decay"))
    ring_size: int = field(default=DEFAULT_RING_SIZE, metadata=doc("ring_hash entries"))
    circuit_breaker: BreakerConfig | None = field(default=None, metadata=doc("off by default"))
    outlier: OutlierConfig | None = field(default=None, metadata=doc("passive health; off"))
    health: HealthConfig | None = field(default=None, metadata=doc("active health; off"))
    connect_timeout: Duration = field(
        default=DEFAULT_CONNECT_TIMEOUT, metadata=doc("TCP connect deadline"))
    response_header_timeout: Duration = field(
        default=DEFAULT_RESPONSE_HEADER_TIMEOUT,
        metadata=doc("deadline from request sent to response head"))
    max_idle: int = field(
        default=DEFAULT_MAX_IDLE, metadata=doc("idle keep-alive connections per endpoint"))
    idle_timeout: Duration = field(
        default=DEFAULT_UPSTREAM_IDLE_TIMEOUT, metadata=doc("idle upstream connection lifetime"))
    tls: UpstreamTlsConfig | None = field(
        default=None,
        metadata=doc("connect to the endpoints over TLS (docs/tls.md); https:// targets set "
                     "it to {}; null: plain HTTP"))
    protocol: UpstreamProtocol = field(
        default=DEFAULT_UPSTREAM_PROTOCOL,
        metadata=doc("http1, or h2: HTTP/2 multiplexing many requests per connection (prior "
                     "knowledge on plain TCP, ALPN h2 over TLS; docs/grpc.md); gRPC needs h2"))

    def balancer_options(self) -> BalancerOptions:
        return BalancerOptions(
            balance=self.balance,
            hash_balance_factor=self.hash_balance_factor,
            active_request_bias=self.active_request_bias,
            panic_threshold=self.panic_threshold,
            ewma_decay=self.ewma_decay,
            ring_size=self.ring_size,
        )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if bool(self.targets) == (self.discovery is not None):
            problems.append(("targets", "give either targets or discovery (exactly one)"))
        if self.hash_on is not None:
            try:
                spec = parse_key(self.hash_on)
            except ValueError as exc:
                problems.append(("hash_on", str(exc)))
            else:
                if spec.kind in ("route", "consumer"):
                    problems.append(("hash_on", f"{self.hash_on!r} is not a per-request key"))
        known = {f"{h}:{p}" for h, p in self.targets}
        for section in ("zones", "labels"):
            for key in getattr(self, section):
                if key not in known:
                    problems.append((f"{section}.{key}", "not one of targets"))
        for key, weight in self.weights.items():
            if key not in known:
                problems.append((f"weights.{key}", "not one of targets"))
            if not 1 <= weight <= MAX_WEIGHT:
                problems.append((f"weights.{key}", f"must be between 1 and {MAX_WEIGHT}, "
                                                   f"got {weight}"))
        try:
            for key, reason in self.balancer_options().check():
                problems.append((key, reason))
        except AttributeError:
            pass
        for key in ("connect_timeout", "response_header_timeout", "idle_timeout"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        if self.health is not None and self.health.kind == "grpc" and self.tls is not None \
                and self.protocol != "h2":
            problems.append(("health.kind", "grpc checks over TLS need protocol: h2 (the "
                                            "probe offers ALPN h2 with the upstream's context)"))
        return problems


@dataclass(frozen=True, kw_only=True)
class RouteConfig:
    name: str | None = field(default=None, metadata=doc("stable name for metrics; route_N"))
    match: MatchConfig = field(default_factory=MatchConfig, metadata=doc("what the route takes"))
    upstream: str | None = field(default=None, metadata=doc("where matched requests go"))
    split: list[SplitEntryConfig] | None = field(
        default=None, metadata=doc("gray split over several upstreams, instead of upstream"))
    canary: CanaryConfig | None = field(
        default=None,
        metadata=doc("a progressive canary between two upstreams, judged from the gateway's "
                     "own figures, instead of upstream (docs/canary.md)"))
    redirect: RedirectConfig | None = field(
        default=None,
        metadata=doc("answer with a redirect instead of forwarding (docs/filters.md)"))
    respond: RespondConfig | None = field(
        default=None,
        metadata=doc("answer with this status, headers and body instead of forwarding"))
    devices: RouteDevicesConfig | None = field(
        default=None,
        metadata=doc("answer the device shadow and telemetry API instead of forwarding "
                     "(docs/devices.md); `true` for the defaults"))
    timeout: Duration | None = field(
        default=DEFAULT_ROUTE_TIMEOUT, metadata=doc("total time per request; null = none"))
    max_body_size: Size | None = field(
        default=None, metadata=doc("largest request body; null = unlimited (streamed)"))
    rate_limit: RateLimitConfig | None = field(default=None, metadata=doc("off by default"))
    max_concurrent: int | None = field(
        default=None, metadata=doc("requests in flight on this route; else 503 overloaded"))
    retries: RetryConfig | None = field(default=None, metadata=doc("off by default"))
    filters: list[Any] = field(
        default_factory=list,
        metadata=doc("the route's filters: names of top-level filters, or inline "
                     "{KIND: config} entries (docs/filters.md)"))
    websocket: WebSocketConfig | None = field(
        default=None,
        metadata=doc("accept WebSocket upgrades as tunnels (docs/websocket.md); `true` for "
                     "the defaults. Off: a handshake gets 400 websocket_not_allowed"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.websocket is not None and not self.filters and (
                self.redirect is not None or self.respond is not None):
            # With filters, one of them may accept handshakes itself (Reply.websocket); the
            # device API accepts device sessions (docs/devices.md).
            problems.append(("websocket", "needs an upstream or split to tunnel to, or a "
                             "filter that accepts the handshake (Reply.websocket)"))
        given = [k for k in ("upstream", "split", "canary", "redirect", "respond", "devices")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            problems.append((given[1] if len(given) > 1 else "upstream",
                             "give exactly one of upstream, split, canary, redirect, respond, "
                             "devices"
                             + (f" (got {', '.join(given)})" if given else "")))
        if (self.redirect is not None and self.redirect.path_prefix is not None
                and self.match.path_prefix is None):
            problems.append(("redirect.path_prefix",
                             "replaces the route's match.path_prefix; this route has none "
                             "(use redirect.path for a fixed path)"))
        if self.split is not None:
            problems.extend(split_problems(self.split))
        if self.timeout is not None and self.timeout <= 0:
            problems.append(("timeout", "must be above 0 (or null for none)"))
        if (self.devices is not None and self.timeout is not None
                and self.timeout <= self.devices.max_wait):
            problems.append(("devices.max_wait", f"must be below the route's timeout "
                             f"({self.timeout:g}s): a long poll would time out first"))
        if self.max_concurrent is not None and self.max_concurrent < 1:
            problems.append(("max_concurrent", "must be at least 1"))
        return problems

    def upstream_names(self) -> list[tuple[str, str]]:
        """(key path relative to the route, upstream name) for every reference."""
        if self.upstream is not None:
            return [("upstream", self.upstream)]
        if self.canary is not None:
            return [(f"canary.{k}", u) for k, u in self.canary.upstream_names()]
        return [(f"split[{i}].upstream", e.upstream) for i, e in enumerate(self.split or [])]


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    listen: Address | None = field(
        default=None,
        metadata=doc("HOST:PORT of a plain listener, served before `listeners`; with neither "
                     "given: 0.0.0.0:8080"))
    listeners: list[ListenerConfig] = field(
        default_factory=list,
        metadata=doc("listeners with their own keys (TLS, https_redirect, hsts): "
                     "[{address, tls, ...}] (docs/tls.md)"))
    admin: AdminConfig | None = field(
        default=None, metadata=doc("admin API; `admin: HOST:PORT` is short for {listen: ...}"))
    server: ServerConfig = field(default_factory=ServerConfig, metadata=doc("listener limits"))
    upstreams: dict[str, UpstreamConfig] = field(
        default_factory=dict, metadata=doc("named upstream clusters"))
    routes: list[RouteConfig] = field(default_factory=list, metadata=doc("ordered routes"))
    redis: RedisConfig | None = field(
        default=None, metadata=doc("for scope: global limits; `redis: URL` shorthand"))
    etcd: EtcdConfig | None = field(default=None, metadata=doc("for etcd discovery"))
    cache: CacheConfig = field(
        default_factory=CacheConfig,
        metadata=doc("the worker's response cache and fleet-wide purges; routes cache with "
                     "the `cache` filter (docs/cache.md)"))
    tracing: TracingConfig | None = field(default=None, metadata=doc("off by default"))
    access_log: AccessLogConfig | None = field(default=None, metadata=doc("off by default"))
    logging: LoggingConfig = field(
        default_factory=LoggingConfig,
        metadata=doc("the process log on stderr: level and format (docs/observability.md)"))
    filters: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc("named filter definitions routes refer to by name (docs/filters.md)"))
    devices: DevicesConfig = field(
        default_factory=DevicesConfig,
        metadata=doc("device shadows, telemetry and the MQTT bridge (docs/devices.md); used "
                     "by routes with `devices:` and by `devices.mqtt`"))
    consumers: dict[str, ConsumerConfig] = field(
        default_factory=dict,
        metadata=doc("who may call: name -> credentials, groups, rate-limit override "
                     "(docs/auth.md); also from etcd with etcd.consumers_prefix"))

    def served_listeners(self) -> list[tuple[str, ListenerConfig]]:
        """(key path, listener) of every listener this config serves, in order."""
        return served_listeners(self.listen, self.listeners)

    def route_name(self, index: int) -> str:
        return self.routes[index].name or f"route_{index}"

    @staticmethod
    def precheck(raw: dict[Any, Any]) -> list[tuple[str, str]]:
        """Route names and the upstreams routes name, read from the raw mapping so that they
        are reported with any type error elsewhere in the same run."""
        return raw_route_problems(raw)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for i, route in enumerate(self.routes):
            rl = route.rate_limit
            if rl is not None and rl.scope == "global" and self.redis is None:
                problems.append((f"routes[{i}].rate_limit.scope",
                                 "scope: global needs a top-level redis: URL"))
            if route.devices is not None and self.redis is None:
                problems.append((f"routes[{i}].devices",
                                 "the device API keeps shadows in Redis: give a top-level "
                                 "redis: URL"))
        if self.devices.mqtt is not None and self.redis is None:
            problems.append(("devices.mqtt", "the MQTT bridge keeps shadows in Redis: give a "
                             "top-level redis: URL"))
        if self.cache.fleet is not None and self.redis is None:
            problems.append(("cache.fleet", "fleet-wide purges need a top-level redis: URL"))
        if self.cache.shared is not None and self.redis is None:
            problems.append(("cache.shared", "the shared cache tier needs a top-level redis: URL"))
        named = read_definitions(self.filters, problems)
        for key, spec in named.items():
            for ref, upstream in spec.upstreams():
                if upstream not in self.upstreams:
                    problems.append((f"filters.{key}.{spec.kind}.{ref}",
                                     f"no upstream named {upstream!r}"))
        for i, route in enumerate(self.routes):
            before = len(problems)
            specs = read_route_filters(route.filters, f"routes[{i}].filters", named, problems)
            if len(problems) > before:
                continue  # specs no longer line up with the entries
            for j, spec in enumerate(specs):
                if isinstance(route.filters[j], str):
                    continue  # a definition: checked above
                for ref, upstream in spec.upstreams():
                    if upstream not in self.upstreams:
                        problems.append((f"routes[{i}].filters[{j}].{spec.kind}.{ref}",
                                         f"no upstream named {upstream!r}"))
        problems.extend(address_problems(self.served_listeners()))
        problems.extend(self._client_cert_problems())
        for name in self.consumers:
            reason = check_consumer_name(name)
            if reason is not None:
                problems.append((f"consumers.{name}", reason))
        for name, up in self.upstreams.items():
            if up.discovery is not None and up.discovery.etcd is not None and self.etcd is None:
                problems.append((f"upstreams.{name}.discovery.etcd",
                                 "etcd discovery needs a top-level etcd: {endpoints: [...]}"))
        for i, route in enumerate(self.routes):
            if route.canary is not None and route.canary.fleet is not None and self.etcd is None:
                problems.append((f"routes[{i}].canary.fleet",
                                 "a fleet canary needs a top-level etcd: {endpoints: [...]}"))
        return problems


    def _client_cert_problems(self) -> list[tuple[str, str]]:
        """A `client_cert` method where no listener asks for client certificates can never
        admit anyone: refused. (Routes serve every listener, so one mTLS listener is enough.)"""
        if any(lst.tls is not None and lst.tls.client_auth != "none"
               for _, lst in self.served_listeners()):
            return []
        ignored: list[tuple[str, str]] = []
        entries = [(f"filters.{key}.{spec.kind}", spec)
                   for key, spec in read_definitions(self.filters, ignored).items()]
        for i, route in enumerate(self.routes):
            for j, raw in enumerate(route.filters):
                spec = None if isinstance(raw, str) else read_entry(raw, "", None, ignored)
                if spec is not None:
                    entries.append((f"routes[{i}].filters[{j}].{spec.kind}", spec))
        reason = ("no listener asks for client certificates, so this method never admits "
                  "anyone: give a listener tls.client_ca and client_auth: optional or required")
        return [(f"{where}.{sub}" if sub else where, reason) for where, spec in entries
                for sub in client_cert_paths(spec.kind, spec.config)]


def raw_route_problems(raw: dict[Any, Any]) -> list[tuple[str, str]]:
    """Duplicate route names and routes naming an upstream that is not defined. Entries of
    the wrong type are skipped here: the typed read reports them."""
    routes, upstreams = raw.get("routes"), raw.get("upstreams", {})
    if not isinstance(routes, list):
        return []
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        name = route.get("name")
        name = name if isinstance(name, str) else f"route_{i}"
        if name.startswith("("):
            problems.append((f"routes[{i}].name", "cannot start with `(`: metrics label "
                             "requests that matched no route `(none)`"))
        if name in seen:
            problems.append((f"routes[{i}].name", f"{name!r} is also routes[{seen[name]}]"))
        seen.setdefault(name, i)
        if isinstance(upstreams, dict):
            for key, upstream in _raw_upstream_names(route):
                if upstream not in upstreams:
                    problems.append((f"routes[{i}].{key}", f"no upstream named {upstream!r}"))
    return problems


def _raw_upstream_names(route: dict[Any, Any]) -> list[tuple[str, str]]:
    if isinstance(route.get("upstream"), str):
        return [("upstream", route["upstream"])]
    canary = route.get("canary")
    if isinstance(canary, dict):
        names = [(k, canary.get(k)) for k in ("stable", "canary")]
        names += [(f"{k}.upstream", canary[k].get("upstream")) for k in
                  ("pre_promotion", "post_rollback") if isinstance(canary.get(k), dict)]
        return [(f"canary.{k}", u) for k, u in names if isinstance(u, str)]
    split = route.get("split")
    if not isinstance(split, list):
        return []
    return [(f"split[{i}].upstream", e["upstream"]) for i, e in enumerate(split)
            if isinstance(e, dict) and isinstance(e.get("upstream"), str)]


def normalize(raw: Any) -> Any:
    """Expand the documented shorthands before the typed read."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    if isinstance(out.get("admin"), str):
        out["admin"] = {"listen": out["admin"]}
    if isinstance(out.get("redis"), str):
        out["redis"] = {"url": out["redis"]}
    if isinstance(out.get("upstreams"), dict):
        out["upstreams"] = {k: normalize_targets(target_mappings(v))
                            for k, v in out["upstreams"].items()}
    routes = out.get("routes")
    if isinstance(routes, list):
        out["routes"] = [
            _route_shorthands(r) if isinstance(r, dict) else r for r in routes]
    return out


TARGET_KEYS: frozenset[str] = frozenset({"address", "weight", "zone", "labels"})


def target_mappings(upstream: Any) -> Any:
    """`targets: [{address: A, zone: Z, labels: {...}, weight: W}, "B"]` -> `targets: [A, B]`
    plus `zones: {A: Z}`, `labels: {A: {...}}`, `weights: {A: W}`. A mapping with other keys
    or without a string address is left for the typed reader to refuse at its index."""
    if not isinstance(upstream, dict) or not isinstance(upstream.get("targets"), list):
        return upstream
    if not any(isinstance(t, dict) for t in upstream["targets"]):
        return upstream
    out = dict(upstream)
    sections: dict[str, dict[Any, Any]] = {
        key: dict(upstream[key]) if isinstance(upstream.get(key), dict) else {}
        for key in ("zones", "labels", "weights")}
    targets: list[Any] = []
    for t in upstream["targets"]:
        if (not isinstance(t, dict) or not isinstance(t.get("address"), str)
                or not set(t) <= TARGET_KEYS):
            targets.append(t)
            continue
        address = t["address"]
        targets.append(address)
        for key, section in (("zone", "zones"), ("labels", "labels"), ("weight", "weights")):
            if key in t:
                sections[section][address] = t[key]
    out["targets"] = targets
    for name, entries in sections.items():
        if entries:
            out[name] = entries
    return out


def _route_shorthands(route: dict[Any, Any]) -> dict[Any, Any]:
    out = dict(route)
    if "websocket" in out:
        out["websocket"] = expand_shorthand(out["websocket"])
    if out.get("devices") is True:
        out["devices"] = {}
    return out
