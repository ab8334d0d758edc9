"""Every metric the gateway exports, declared in ONE list (as Envoy declares its stats), and a
`GatewayMetrics` object that holds the families and hands out cached children.

The hot path asks once per route for a `RouteMetrics` (kept on the compiled route) and then
only does float adds on children it already holds. Gateway (own) time is not a separate
histogram: it is `request_duration - upstream_duration`, e.g.
    rate(edgeward_request_duration_seconds_sum[5m])
      - rate(edgeward_upstream_duration_seconds_sum[5m])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edgeward.observe.metrics import (
    Aggregate,
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    Registry,
    bucket_of,
)

if TYPE_CHECKING:
    from edgeward.proxy.upgrade import WebSocketBook

# Cardinality caps (label sets per family; more go to the `__overflow__` child).
# Per-route families: 1000 routes is far beyond a typical gateway config (Kong and APISIX users
# report tens to hundreds) while a histogram child costs ~0.5 KB, so 1000 stays under 1 MB.
MAX_ROUTE_CHILDREN = 1000
# route x upstream x status code: a few codes per route pair; 5000 keeps a scrape < 1 MB.
MAX_REQUEST_CHILDREN = 5000
# upstream x endpoint (x outcome): large fleets have hundreds of endpoints per upstream.
MAX_ENDPOINT_CHILDREN = 5000
# upstream-keyed families.
MAX_UPSTREAM_CHILDREN = 1000
# route x auth method x outcome: 5 methods x 5 outcomes per route at most.
MAX_AUTH_CHILDREN = 5000
# route x consumer, for consumers configured with `metrics: true` only; past the cap the
# `__overflow__` child counts the rest.
MAX_CONSUMER_CHILDREN = 5000
# 17 gRPC statuses per route, and a few values an upstream should never send.
MAX_GRPC_CHILDREN = 5000
# config hashes: only the current one is kept (old ones are removed on reload).
MAX_CONFIG_CHILDREN = 16

# Circuit breaker state gauge values (the numbers are part of the public contract).
CIRCUIT_CLOSED = 0
CIRCUIT_OPEN = 1
CIRCUIT_HALF_OPEN = 2
# The breaker states by name, in the order of their numbers above (the per-state family's
# `state` label values).
CIRCUIT_STATES: tuple[str, ...] = ("closed", "open", "half_open")


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    kind: Literal["counter", "gauge", "histogram"]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    max_children: int | None = None
    aggregate: Aggregate = "sum"


FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec(kind="counter", name="edgeward_requests_total",
               help="Requests answered, by route, upstream and response status code.",
               labels=("route", "upstream", "code"), max_children=MAX_REQUEST_CHILDREN),
    MetricSpec(kind="histogram", name="edgeward_request_duration_seconds",
               help="Time from the request head arriving to the last response byte sent.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="histogram", name="edgeward_upstream_duration_seconds",
               help="Time spent waiting on the upstream (connect to last response byte); "
                    "gateway time is request duration minus this.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_upstream_requests_total",
               help="Attempts sent to an upstream endpoint, by outcome "
                    "(success, failure, timeout, connect_error, reset).",
               labels=("upstream", "endpoint", "outcome"), max_children=MAX_ENDPOINT_CHILDREN),
    MetricSpec(kind="histogram", name="edgeward_upstream_attempt_duration_seconds",
               help="Time from sending one attempt to its response head (or its failure), "
                    "per upstream.",
               labels=("upstream",), max_children=MAX_UPSTREAM_CHILDREN),
    MetricSpec(kind="gauge", name="edgeward_active_connections",
               help="Client connections currently open (summed over workers)."),
    MetricSpec(kind="gauge", name="edgeward_active_requests",
               help="Requests currently in flight (summed over workers)."),
    MetricSpec(kind="counter", name="edgeward_received_bytes_total",
               help="Request body bytes received from clients.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_sent_bytes_total",
               help="Response body bytes sent to clients.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="gauge", name="edgeward_circuit_breaker_state",
               help="Circuit breaker state: 0 closed, 1 open, 2 half-open (max over workers).",
               labels=("upstream",), max_children=MAX_UPSTREAM_CHILDREN, aggregate="max"),
    MetricSpec(kind="gauge", name="edgeward_circuit_breaker_states",
               help="1 for the circuit breaker's current state (closed, open, half_open), "
                    "0 for the others (max over workers: a state is 1 if one worker's "
                    "breaker is in it).",
               labels=("upstream", "state"), max_children=3 * MAX_UPSTREAM_CHILDREN,
               aggregate="max"),
    MetricSpec(kind="counter", name="edgeward_outlier_ejections_total",
               help="Endpoints ejected by outlier detection.",
               labels=("upstream",), max_children=MAX_UPSTREAM_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_ratelimit_refused_total",
               help="Requests refused (429) by a rate limit.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_auth_requests_total",
               help="Requests through an authentication filter, by route, method (jwt, "
                    "api_key, basic, forward; none: no credential) and outcome (ok, "
                    "unauthenticated, forbidden, denied, auth_unavailable).",
               labels=("route", "method", "outcome"), max_children=MAX_AUTH_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_consumer_requests_total",
               help="Authenticated requests by route and consumer, for consumers configured "
                    "with metrics: true.",
               labels=("route", "consumer"), max_children=MAX_CONSUMER_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_grpc_responses_total",
               help="gRPC calls finished on routes matching grpc: (and the gateway's own "
                    "answers to gRPC calls), by route and grpc-status (0 OK ... 16).",
               labels=("route", "grpc_status"), max_children=MAX_GRPC_CHILDREN),
    MetricSpec(kind="gauge", name="edgeward_endpoint_healthy",
               help="1 if the active health check passes for the endpoint, else 0 "
                    "(min is what matters; exported as max over workers, which all probe).",
               labels=("upstream", "endpoint"), max_children=MAX_ENDPOINT_CHILDREN,
               aggregate="max"),
    MetricSpec(kind="counter", name="edgeward_config_reloads_total",
               help="Configuration reloads, by result (ok or error).",
               labels=("result",), max_children=4),
    MetricSpec(kind="gauge", name="edgeward_config_info",
               help="Always 1, labelled with the hash of the configuration being served.",
               labels=("hash",), max_children=MAX_CONFIG_CHILDREN, aggregate="max"),
    MetricSpec(kind="gauge", name="edgeward_config_last_reload_timestamp_seconds",
               help="Unix time of the last successful configuration load.", aggregate="max"),
    MetricSpec(kind="counter", name="edgeward_retries_total",
               help="Retried attempts, by route and upstream.",
               labels=("route", "upstream"), max_children=MAX_REQUEST_CHILDREN),
    MetricSpec(kind="gauge", name="edgeward_canary_weight",
               help="Percent of a canary route's requests sent to the canary upstream "
                    "(max over workers).",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN, aggregate="max"),
    MetricSpec(kind="counter", name="edgeward_canary_decisions_total",
               help="Canary decisions by route and decision (start, advance, confirm, "
                    "promote, hold, wait, rollback, pause, abort).",
               labels=("route", "decision"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_access_log_dropped_total",
               help="Access log lines dropped because the writer queue was full."),
    MetricSpec(kind="counter", name="edgeward_trace_spans_dropped_total",
               help="Spans dropped (exporter queue full or export failed)."),
    MetricSpec(kind="counter", name="edgeward_filter_errors_total",
               help="Requests a filter failed (500 filter_error), by route and filter.",
               labels=("route", "filter"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_underscore_headers_total",
               help="Request fields named with `_`, dropped or refused "
                    "(server.headers_with_underscores)."),
    # Built-in filters (edgeward.filters.events: counted by the filters, copied in when
    # metrics are read).
    MetricSpec(kind="counter", name="edgeward_mirror_requests_total",
               help="Request copies a mirror filter made, by route, shadow upstream and "
                    "result (ok, error, dropped, too_large).",
               labels=("route", "upstream", "result"), max_children=MAX_REQUEST_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_faults_injected_total",
               help="Faults a fault filter injected, by route and fault (abort, delay).",
               labels=("route", "fault"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_compressed_responses_total",
               help="Responses a compress filter encoded, by route and algorithm.",
               labels=("route", "algorithm"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cors_rejected_total",
               help="CORS preflights refused (403 cors_rejected), by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_ip_denied_total",
               help="Requests refused by an ip filter (403 ip_denied), by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cache_requests_total",
               help="Requests a cache filter saw, by route and result (HIT, MISS, STALE, "
                    "REVALIDATED, BYPASS: the X-Cache value).",
               labels=("route", "result"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cache_served_bytes_total",
               help="Body bytes answered from the cache, by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cache_stored_bytes_total",
               help="Body bytes stored in the cache, by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cache_purges_total",
               help="Purges applied in this worker, by kind (key, prefix, tag, flush) and "
                    "source (admin, rule, stream).",
               labels=("kind", "source"), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_cache_shared_total",
               help="The shared (Redis) cache tier, by route and result: lookups after a "
                    "local miss (hit, miss, error: failed or slower than cache.shared.timeout), "
                    "writes (stored, write_error, too_large, dropped).",
               labels=("route", "result"), max_children=MAX_ROUTE_CHILDREN),
    # The process (edgeward.observe.process), the names Prometheus client libraries use.
    MetricSpec(kind="counter", name="process_cpu_seconds_total",
               help="User and system CPU time of the worker processes (summed)."),
    MetricSpec(kind="gauge", name="process_resident_memory_bytes",
               help="Resident memory of the worker processes (summed)."),
    MetricSpec(kind="gauge", name="process_open_fds",
               help="Open file descriptors of the worker processes (summed)."),
    MetricSpec(kind="gauge", name="process_max_fds",
               help="Open file limit of one worker process (the soft RLIMIT_NOFILE).",
               aggregate="max"),
    MetricSpec(kind="gauge", name="process_start_time_seconds",
               help="Unix time the most recently started worker process started.",
               aggregate="max"),
    MetricSpec(kind="counter", name="edgeward_h2_glitches_total",
               help="HTTP/2 client connections ended for breaking an attack limit, by reason "
                    "(rapid_reset, stream_burst, server_reset, ping, settings, empty_frame, "
                    "window_update, flood, protocol; docs/http2.md).",
               labels=("reason",), max_children=16),
    MetricSpec(kind="counter", name="edgeward_refused_connections_total",
               help="Client connections closed as they were accepted because "
                    "server.max_connections were open on their listener (summed)."),
    MetricSpec(kind="counter", name="edgeward_open_files_exhausted_seconds_total",
               help="Seconds a worker spent with every file descriptor in use, when new "
                    "client connections are closed as soon as accepted (summed)."),
    MetricSpec(kind="gauge", name="edgeward_build_info",
               help="Always 1, labelled with the edgeward version, the Python version and "
                    "whether the data plane runs compiled.",
               labels=("version", "python", "compiled"), max_children=4, aggregate="max"),
    # WebSocket tunnels (edgeward.proxy.upgrade.WebSocketBook: counted by the worker, copied
    # in when metrics are read).
    MetricSpec(kind="gauge", name="edgeward_websocket_tunnels_open",
               help="WebSocket tunnels open now (with handshakes admitted and not yet "
                    "answered), by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_websocket_upgrades_total",
               help="WebSocket handshakes by route and outcome (upgraded, refused, "
                    "upstream_refused, failed).",
               labels=("route", "outcome"), max_children=MAX_AUTH_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_websocket_bytes_total",
               help="Bytes relayed through WebSocket tunnels, by route and direction "
                    "(to_upstream, to_client).",
               labels=("route", "direction"), max_children=MAX_AUTH_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_websocket_closed_total",
               help="WebSocket tunnels ended, by route and reason (closed, reset, "
                    "idle_timeout, shutdown, dead_peer, reload, cut).",
               labels=("route", "reason"), max_children=MAX_AUTH_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_websocket_pings_total",
               help="Pings the gateway sent into tunnels (websocket.ping_interval), by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    MetricSpec(kind="counter", name="edgeward_websocket_paused_total",
               help="Times a tunnel stopped reading one side because the other side's write "
                    "buffer was full (backpressure), by route.",
               labels=("route",), max_children=MAX_ROUTE_CHILDREN),
    # Device gateway mode (docs/devices.md): set from the worker's shadow stores and MQTT
    # bridges when metrics are read.
    MetricSpec(kind="counter", name="edgeward_device_shadow_updates_total",
               help="Shadow updates by outcome (applied, duplicate, stale, conflict).",
               labels=("outcome",)),
    MetricSpec(kind="counter", name="edgeward_device_cas_conflicts_total",
               help="Shadow compare-and-set rounds lost to another writer (then retried)."),
    MetricSpec(kind="counter", name="edgeward_device_telemetry_total",
               help="Telemetry messages by result (stored, duplicate: a resend stored before).",
               labels=("result",)),
    MetricSpec(kind="counter", name="edgeward_device_mqtt_messages_total",
               help="MQTT bridge messages: received requests; accepted, rejected and delta "
                    "replies published; claimed: change entries taken over from another "
                    "gateway (XAUTOCLAIM).",
               labels=("kind",)),
    MetricSpec(kind="counter", name="edgeward_device_outbox_messages_total",
               help="Messages to devices by class (command, delta, ack) and outcome (queued, "
                    "sent, dropped, coalesced, refused).",
               labels=("class", "outcome")),
    MetricSpec(kind="gauge", name="edgeward_device_outbox_queued",
               help="Messages waiting in the device outboxes (MQTT bridge and sessions)."),
    MetricSpec(kind="gauge", name="edgeward_device_sessions",
               help="Devices connected to this worker over WebSocket (one session each)."),
    MetricSpec(kind="counter", name="edgeward_device_session_messages_total",
               help="WebSocket session messages: received from devices; accepted and "
                    "rejected replies, delta messages and acked deltas; replaced: sessions "
                    "a newer connection of the same device took over.",
               labels=("kind",)),
)

# The route label of requests that matched no route (404 route_not_found). Not a name a
# route can have: route names are refused when they start with "(".
NO_ROUTE = "(none)"

# Filter event family (edgeward.filters.events) -> (metric, how many labels after route).
FILTER_FAMILIES: dict[str, tuple[str, int]] = {
    "mirror": ("edgeward_mirror_requests_total", 2),
    "fault": ("edgeward_faults_injected_total", 1),
    "compress": ("edgeward_compressed_responses_total", 1),
    "cors_rejected": ("edgeward_cors_rejected_total", 0),
    "ip_denied": ("edgeward_ip_denied_total", 0),
    "cache": ("edgeward_cache_requests_total", 1),
    "cache_served_bytes": ("edgeward_cache_served_bytes_total", 0),
    "cache_stored_bytes": ("edgeward_cache_stored_bytes_total", 0),
    "cache_purge": ("edgeward_cache_purges_total", 1),
    "cache_shared": ("edgeward_cache_shared_total", 1),
}


class RouteMetrics:
    """The children one route needs, fetched once. `finish()` records a completed request."""

    __slots__ = ("route", "duration", "upstream_duration", "received_bytes", "sent_bytes",
                 "ratelimit_refused", "_requests", "_retries", "_requests_family",
                 "_retries_family", "_last_upstream", "_last_status", "_last_requests",
                 "_auth", "_auth_family", "_consumers", "_consumer_family", "_grpc",
                 "_grpc_family")

    def __init__(self, route: str, metrics: GatewayMetrics) -> None:
        self.route = route
        self.duration = metrics.request_duration.labels(route)
        self.upstream_duration = metrics.upstream_duration.labels(route)
        self.received_bytes = metrics.received_bytes.labels(route)
        self.sent_bytes = metrics.sent_bytes.labels(route)
        self.ratelimit_refused = metrics.ratelimit_refused.labels(route)
        self._requests: dict[tuple[str, int], CounterChild] = {}
        self._retries: dict[str, CounterChild] = {}
        self._requests_family = metrics.requests
        self._retries_family = metrics.retries
        # The requests child used last, with its key: most answers repeat the previous one's
        # upstream and status, and then skip building and hashing the (upstream, status) key.
        self._last_upstream = ""
        self._last_status = -1
        self._last_requests: CounterChild | None = None
        self._auth: dict[tuple[str, str], CounterChild] = {}
        self._auth_family = metrics.auth_requests
        self._consumers: dict[str, CounterChild] = {}
        self._consumer_family = metrics.consumer_requests
        self._grpc: dict[bytes, CounterChild] = {}
        self._grpc_family = metrics.grpc_responses

    def auth(self, result: tuple[str, str]) -> CounterChild:
        """The child for an authentication (method, outcome)."""
        child = self._auth.get(result)
        if child is None:
            child = self._auth[result] = self._auth_family.labels(self.route, *result)
        return child

    def consumer(self, name: str) -> CounterChild:
        child = self._consumers.get(name)
        if child is None:
            child = self._consumers[name] = self._consumer_family.labels(self.route, name)
        return child

    def grpc(self, status: bytes) -> CounterChild:
        """The child for a grpc-status value as received (digits; anything else as sent is
        one label per distinct value, bounded by the family's max_children)."""
        child = self._grpc.get(status)
        if child is None:
            label = status.decode("latin-1")[:8]
            child = self._grpc[status] = self._grpc_family.labels(self.route, label)
        return child

    def requests(self, upstream: str, status: int) -> CounterChild:
        key = (upstream, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests_family.labels(self.route, upstream, str(status))
            self._requests[key] = child
        return child

    def retries(self, upstream: str) -> CounterChild:
        child = self._retries.get(upstream)
        if child is None:
            child = self._retries_family.labels(self.route, upstream)
            self._retries[upstream] = child
        return child

    def finish(self, upstream: str, status: int, duration: float,
               upstream_duration: float | None, bytes_in: int, bytes_out: int) -> None:
        """Record one answered request. `upstream_duration` is None when no upstream was
        reached (local reply: 404, 429...); use upstream "" for local replies.
        The histogram updates are inlined (same as `observe`): this runs once per request."""
        child = self._last_requests
        if child is None or status != self._last_status or upstream != self._last_upstream:
            child = self._requests.get((upstream, status))
            if child is None:
                child = self.requests(upstream, status)
            self._last_upstream = upstream
            self._last_status = status
            self._last_requests = child
        child.value += 1.0
        hist = self.duration
        counts = hist.counts
        i = bucket_of(hist.bounds, duration)
        counts[i] = counts[i] + 1  # (not `+=`: compiled, that is a generic in-place add)
        hist.sum += duration
        if upstream_duration is not None:
            hist = self.upstream_duration
            counts = hist.counts
            i = bucket_of(hist.bounds, upstream_duration)
            counts[i] = counts[i] + 1
            hist.sum += upstream_duration
        self.received_bytes.value += bytes_in
        self.sent_bytes.value += bytes_out


class GatewayMetrics:
    """The gateway's families in one registry, and cached children for the shell."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        made: dict[str, Counter | Gauge | Histogram] = {}
        for spec in FAMILIES:
            if spec.kind == "counter":
                made[spec.name] = self.registry.counter(
                    spec.name, spec.help, spec.labels, max_children=spec.max_children)
            elif spec.kind == "gauge":
                made[spec.name] = self.registry.gauge(
                    spec.name, spec.help, spec.labels, max_children=spec.max_children,
                    aggregate=spec.aggregate)
            else:
                made[spec.name] = self.registry.histogram(
                    spec.name, spec.help, spec.labels, max_children=spec.max_children)

        def counter(name: str) -> Counter:
            family = made[name]
            assert isinstance(family, Counter)
            return family

        def gauge(name: str) -> Gauge:
            family = made[name]
            assert isinstance(family, Gauge)
            return family

        def histogram(name: str) -> Histogram:
            family = made[name]
            assert isinstance(family, Histogram)
            return family

        self.requests = counter("edgeward_requests_total")
        self.request_duration = histogram("edgeward_request_duration_seconds")
        self.upstream_duration = histogram("edgeward_upstream_duration_seconds")
        self.upstream_requests = counter("edgeward_upstream_requests_total")
        self.upstream_attempt_duration = histogram("edgeward_upstream_attempt_duration_seconds")
        self.received_bytes = counter("edgeward_received_bytes_total")
        self.sent_bytes = counter("edgeward_sent_bytes_total")
        self.circuit_breaker_state = gauge("edgeward_circuit_breaker_state")
        self.circuit_breaker_states = gauge("edgeward_circuit_breaker_states")
        self.outlier_ejections = counter("edgeward_outlier_ejections_total")
        self.ratelimit_refused = counter("edgeward_ratelimit_refused_total")
        self.endpoint_healthy_family = gauge("edgeward_endpoint_healthy")
        self.config_reloads = counter("edgeward_config_reloads_total")
        self.config_info = gauge("edgeward_config_info")
        self.retries = counter("edgeward_retries_total")
        self.auth_requests = counter("edgeward_auth_requests_total")
        self.consumer_requests = counter("edgeward_consumer_requests_total")
        self.grpc_responses = counter("edgeward_grpc_responses_total")
        self.active_connections: GaugeChild = gauge("edgeward_active_connections").labels()
        self.active_requests: GaugeChild = gauge("edgeward_active_requests").labels()
        self.config_last_reload: GaugeChild = gauge(
            "edgeward_config_last_reload_timestamp_seconds").labels()
        self.access_log_dropped: CounterChild = counter(
            "edgeward_access_log_dropped_total").labels()
        self.trace_spans_dropped: CounterChild = counter(
            "edgeward_trace_spans_dropped_total").labels()
        self.filter_errors = counter("edgeward_filter_errors_total")
        self.underscore_headers: CounterChild = counter(
            "edgeward_underscore_headers_total").labels()
        self.process_cpu: CounterChild = counter("process_cpu_seconds_total").labels()
        self.process_memory: GaugeChild = gauge("process_resident_memory_bytes").labels()
        self.process_open_fds: GaugeChild = gauge("process_open_fds").labels()
        self.process_max_fds: GaugeChild = gauge("process_max_fds").labels()
        self.process_start_time: GaugeChild = gauge("process_start_time_seconds").labels()
        self.refused_connections: CounterChild = counter(
            "edgeward_refused_connections_total").labels()
        self.h2_glitches = counter("edgeward_h2_glitches_total")
        self.fd_exhausted: CounterChild = counter(
            "edgeward_open_files_exhausted_seconds_total").labels()
        self.build_info = gauge("edgeward_build_info")
        self._routes: dict[str, RouteMetrics] = {}
        self._filter_families = {key: (counter(name), extra)
                                 for key, (name, extra) in FILTER_FAMILIES.items()}
        self._filter_children: dict[tuple[str, str, str, str], CounterChild] = {}

    def filter_counts(self, counts: dict[tuple[str, str, str, str], int]) -> None:
        """Set the filter families from the worker's event totals (family, route, label,
        label) -> count; they only grow, so the counters do too."""
        children = self._filter_children
        for key, count in list(counts.items()):
            child = children.get(key)
            if child is None:
                found = self._filter_families.get(key[0])
                if found is None:
                    continue
                family, extra = found
                child = children[key] = family.labels(key[1], *key[2:2 + extra])
            child.value = float(count)

    def websocket_counts(self, book: WebSocketBook) -> None:
        """Set the edgeward_websocket_* families from the worker's WebSocket book."""
        for route, stats in list(book.routes.items()):
            self._set("edgeward_websocket_tunnels_open", (route,), stats.open)
            self._set("edgeward_websocket_bytes_total", (route, "to_upstream"), stats.bytes_up)
            self._set("edgeward_websocket_bytes_total", (route, "to_client"), stats.bytes_down)
            self._set("edgeward_websocket_paused_total", (route,), stats.pauses)
            self._set("edgeward_websocket_pings_total", (route,), stats.pings)
            for reason, n in list(stats.ended.items()):
                self._set("edgeward_websocket_closed_total", (route, reason), n)
        for (route, outcome), n in list(book.upgrades.items()):
            self._set("edgeward_websocket_upgrades_total", (route, outcome), n)

    def device_counts(self, stores: list[Any], bridges: list[Any],
                      hubs: list[Any]) -> None:
        """Set the edgeward_device_* families from the worker's shadow stores
        (`devices.store.ShadowStore`), MQTT bridges (`devices.mqtt_bridge.MqttBridge`) and
        WebSocket sessions (`devices.sessions.DeviceSessions`)."""
        totals: dict[tuple[str, tuple[str, ...]], int] = {}

        def add(family: str, labels: tuple[str, ...], n: int) -> None:
            key = (family, labels)
            totals[key] = totals.get(key, 0) + n

        for store in stores:
            for outcome, n in store.outcomes.items():
                add("edgeward_device_shadow_updates_total", (outcome,), n)
            add("edgeward_device_cas_conflicts_total", (), store.conflicts)
            for result, n in store.telemetry.items():
                add("edgeward_device_telemetry_total", (result,), n)
        queued = 0
        buffers = [b.outbox.buffer for b in bridges] + [h.buffer for h in hubs]
        for bridge in bridges:
            for kind, n in bridge.stats.items():
                add("edgeward_device_mqtt_messages_total", (kind,), n)
        for hub in hubs:
            for kind, n in hub.stats.items():
                add("edgeward_device_session_messages_total", (kind,), n)
        for buf in buffers:
            st = buf.stats
            for i, name in enumerate(("command", "delta", "ack")):
                add("edgeward_device_outbox_messages_total", (name, "queued"), st.queued[i])
                add("edgeward_device_outbox_messages_total", (name, "sent"), st.sent[i])
                add("edgeward_device_outbox_messages_total", (name, "dropped"), st.dropped[i])
            add("edgeward_device_outbox_messages_total", ("delta", "coalesced"), st.coalesced)
            add("edgeward_device_outbox_messages_total", ("command", "refused"), st.refused)
            queued += len(buf)
        for (family, labels), n in totals.items():
            self._set(family, labels, n)
        if buffers:
            self._set("edgeward_device_outbox_queued", (), queued)
        if hubs:
            self._set("edgeward_device_sessions", (), sum(len(h.sessions) for h in hubs))

    def canary_counts(self, weights: dict[str, int],
                      decisions: dict[tuple[str, str], int]) -> None:
        """Set the canary families: each route's weight now, decision totals so far."""
        for route, weight in list(weights.items()):
            self._set("edgeward_canary_weight", (route,), weight)
        for (route, kind), n in list(decisions.items()):
            self._set("edgeward_canary_decisions_total", (route, kind), n)

    def _set(self, family: str, labels: tuple[str, ...], value: int) -> None:
        found = self.registry.get(family)
        if isinstance(found, Counter | Gauge):
            found.labels(*labels).value = float(value)

    def route(self, route: str) -> RouteMetrics:
        rm = self._routes.get(route)
        if rm is None:
            rm = RouteMetrics(route, self)
            self._routes[route] = rm
        return rm

    def upstream_request(self, upstream: str, endpoint: str, outcome: str) -> CounterChild:
        return self.upstream_requests.labels(upstream, endpoint, outcome)

    def circuit_state(self, upstream: str) -> GaugeChild:
        """Set to CIRCUIT_CLOSED / CIRCUIT_OPEN / CIRCUIT_HALF_OPEN on each transition."""
        return self.circuit_breaker_state.labels(upstream)

    def breaker_entered(self, upstream: str, state: str) -> None:
        """The upstream's breaker is now in `state` (one of CIRCUIT_STATES): both families,
        the numeric gauge and one series per state with 1 for the current one."""
        number = CIRCUIT_STATES.index(state) if state in CIRCUIT_STATES else CIRCUIT_CLOSED
        self.circuit_breaker_state.labels(upstream).set(float(number))
        family = self.circuit_breaker_states
        for name in CIRCUIT_STATES:
            family.labels(upstream, name).set(1.0 if name == state else 0.0)

    def outlier_ejection(self, upstream: str) -> CounterChild:
        return self.outlier_ejections.labels(upstream)

    def endpoint_healthy(self, upstream: str, endpoint: str) -> GaugeChild:
        return self.endpoint_healthy_family.labels(upstream, endpoint)

    def forget_endpoint(self, upstream: str, endpoint: str) -> None:
        """Drop the health gauge of an endpoint that left the cluster."""
        self.endpoint_healthy_family.remove(upstream, endpoint)

    def config_loaded(self, ok: bool, config_hash: str | None, wall_now: float) -> None:
        """Record a (re)load: count it; on success, point config_info at the new hash and
        stamp the time. A refused reload leaves the served hash and time unchanged."""
        self.config_reloads.labels("ok" if ok else "error").inc()
        if ok and config_hash is not None:
            self.config_info.clear()
            self.config_info.labels(config_hash).set(1.0)
            self.config_last_reload.set(wall_now)

    def bind_drop_counters(self, access_log_dropped: Callable[[], float] | None = None,
                           spans_dropped: Callable[[], float] | None = None) -> None:
        """Read the access log's and the span exporter's drop counts at scrape time."""
        if access_log_dropped is not None:
            self.access_log_dropped.set_function(access_log_dropped)
        if spans_dropped is not None:
            self.trace_spans_dropped.set_function(spans_dropped)
