"""Per-exchange accounting: metrics, access log lines and trace spans, at exchange end.

One call per finished exchange (`Telemetry.exchange_done`), with every child metric it touches
cached on the route, and the access log and span export handed to writer threads. The trace
sampling decision was taken when the request head was parsed (`Tracer.start`), before any
span object exists; an unsampled request costs nothing here beyond a None check.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from edgeward.observe.access_log import AccessLog, format_time
from edgeward.observe.gateway_metrics import (
    NO_ROUTE,
    GatewayMetrics,
    RouteMetrics,
)
from edgeward.observe.metrics import CounterChild, HistogramChild, bucket_of
from edgeward.observe.tracing import SPAN_KIND_SERVER, SpanRecord
from edgeward.proxy.connect_failures import ConnectFailure, ConnectFailureLog
from edgeward.proxy.trace import Trace, Tracer
from edgeward.resilience.breaker import Transition
from edgeward.resilience.outcome import Outcome
from edgeward.resilience.outlier import OutlierEvent

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.http.message import RequestHead
    from edgeward.proxy.cluster import Cluster
    from edgeward.proxy.exchange import Exchange
    from edgeward.proxy.snapshot import Snapshot

_quote = json.encoder.encode_basestring  # C: JSON string with quotes, non-ASCII kept
_ERROR_LABEL = {"connect_failure": "connect_error", "timeout": "timeout", "reset": "reset"}


class Telemetry:
    """Everything a worker records about finished exchanges."""

    def __init__(self, metrics: GatewayMetrics, access_log: AccessLog | None,
                 tracer: Tracer | None) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.tracer = tracer
        self._route_metrics: dict[str, RouteMetrics] = {}
        self._attempts: dict[tuple[str, str, str], CounterChild] = {}
        self._attempt_hist: dict[str, HistogramChild] = {}
        # The children of the last attempt recorded, by the identity of what chose them.
        self._last_endpoint: Endpoint | None = None
        self._last_label = ""
        self._last_cluster: Cluster | None = None
        self._last_child: CounterChild | None = None
        self._last_hist: HistogramChild | None = None
        self._breakers_reported: set[str] = set()
        self._clock = time.monotonic
        self.connect_failures = ConnectFailureLog()  # warnings, rate-limited per endpoint

    def route_metrics(self, name: str) -> RouteMetrics:
        rm = self._route_metrics.get(name)
        if rm is None:
            rm = self._route_metrics[name] = self.metrics.route(name)
        return rm

    def attempt(self, cluster: Cluster, endpoint: Endpoint, outcome: Outcome,
                duration: float) -> None:
        """One upstream attempt ended: count it per endpoint and outcome, time it."""
        error = outcome.error
        if error is None:
            label = "failure" if outcome.failed else "success"
        else:
            label = _ERROR_LABEL[error]
        if (endpoint is self._last_endpoint and label is self._last_label
                and cluster is self._last_cluster):
            last_child, last_hist = self._last_child, self._last_hist
            assert last_child is not None and last_hist is not None  # set with the identities
            child, hist = last_child, last_hist  # the usual case: same endpoint, same outcome
        else:
            key = (cluster.name, endpoint.key, label)
            found = self._attempts.get(key)
            if found is None:
                found = self._attempts[key] = self.metrics.upstream_request(*key)
            found_hist = self._attempt_hist.get(cluster.name)
            if found_hist is None:
                found_hist = self._attempt_hist[cluster.name] = (
                    self.metrics.upstream_attempt_duration.labels(cluster.name))
            child, hist = found, found_hist
            self._last_endpoint, self._last_label, self._last_cluster = endpoint, label, cluster
            self._last_child, self._last_hist = child, hist
        child.value += 1.0
        counts = hist.counts
        i = bucket_of(hist.bounds, duration)
        counts[i] = counts[i] + 1  # (not `+=`: compiled, that is a generic in-place add)
        hist.sum += duration

    def attempt_counts(self) -> list[tuple[tuple[str, str, str], CounterChild]]:
        """(upstream, endpoint, outcome) -> the attempts counted so far."""
        return list(self._attempts.items())

    def upstream_histograms(self) -> list[tuple[str, HistogramChild]]:
        return list(self._attempt_hist.items())

    def route_metrics_items(self) -> list[tuple[str, RouteMetrics]]:
        return list(self._route_metrics.items())

    def exchange_done(self, ex: Exchange) -> None:
        now = ex.ended or self._clock()  # the exchange read the clock as it finished
        route = ex.route
        if route is not None:
            name = route.name
            rm = route.metrics
            if rm is None:
                rm = route.metrics = self.route_metrics(name)
        else:
            name = ""
            rm = self.route_metrics(NO_ROUTE)
        assert isinstance(rm, RouteMetrics)
        fwd = ex.fwd
        cluster = fwd.cluster if fwd is not None else None
        upstream = cluster.name if cluster is not None else ""
        duration = now - ex.started if ex.started else 0.0
        status = ex.status
        upstream_time = fwd.upstream_time if fwd is not None and fwd.upstream_time else None
        rm.finish(upstream, status, duration, upstream_time, ex.head.body_received,
                  ex.bytes_out)
        if ex.error_code == "rate_limited":
            rm.ratelimit_refused.value += 1.0
        if ex.grpc_status:
            rm.grpc(ex.grpc_status).value += 1.0
        head = ex.head
        auth = head.auth_result
        if auth is not None:
            rm.auth(auth).value += 1.0
            consumer = head.consumer
            if consumer is not None and consumer.metric_label:
                rm.consumer(consumer.metric_label).value += 1.0
        if fwd is not None and fwd.attempt > 1:
            rm.retries(upstream).value += fwd.attempt - 1
        trace: Trace | None = head.trace  # type: ignore[assignment]
        if self.access_log is not None:
            # Formatted here, in C-speed json.dumps, so the writer thread only writes bytes
            # and never holds the GIL for long batches of formatting (which stalls the loop).
            self.access_log.log(access_line(ex, name, upstream, duration, trace))
        if trace is not None and trace.sampled and self.tracer is not None:
            exporter = self.tracer.exporter
            if exporter is not None:
                exporter.export(_span(ex, name, upstream, trace))

    def filter_failed(self, route: str, name: str) -> None:
        self.metrics.filter_errors.labels(route, name).inc()

    def drain_cluster_events(self, snapshot: Snapshot) -> None:
        """Breaker transitions and outlier ejections into metrics (called every second); an
        upstream's breaker state is exported from its first call on, before any transition."""
        metrics = self.metrics
        reported = self._breakers_reported
        for cluster in snapshot.clusters.values():
            if cluster.guarded and cluster.name not in reported:
                reported.add(cluster.name)
                breaker = cluster.breaker
                state = breaker.state(self._clock()) if breaker is not None else "closed"
                metrics.breaker_entered(cluster.name, state)
            events = cluster.events
            if not events:
                continue
            cluster.events = []
            for event in events:
                if isinstance(event, Transition):
                    metrics.breaker_entered(cluster.name, str(event.to_state))
                elif isinstance(event, OutlierEvent) and event.kind == "ejected":
                    metrics.outlier_ejection(cluster.name).inc()
                elif isinstance(event, ConnectFailure):
                    self.connect_failures.record(cluster.name, event)
        self.connect_failures.flush(self._clock())


_LINE = ('{"time":"%s","request_id":%s,"trace_id":%s,"client":%s,"method":%s,"host":%s,'
         '"path":%s,"status":%d,"route":%s,"upstream":%s,"endpoint":%s,"bytes_in":%d,'
         '"bytes_out":%d,"duration":%r,"upstream_connect":%s,"upstream_response":%s,'
         '"retries":%d,"error_code":%s,"consumer":%s}')


def _json_str(value: str | None) -> str:
    return "null" if value is None else _quote(value)


class _Clock:
    """Wall-clock text for log lines, formatted once per millisecond (many requests finish
    in the same one at load) instead of per request."""

    def __init__(self) -> None:
        self.ms = -1
        self.text = ""

    def stamp(self) -> str:
        ms = int(time.time() * 1000)
        if ms != self.ms:
            self.ms = ms
            self.text = format_time(ms / 1000)
        return self.text


_CLOCK = _Clock()


def access_line(ex: Exchange, route: str, upstream: str, duration: float,
                trace: Trace | None) -> str:
    """The access log's JSON line, formatted directly (fields in access_log.FIELDS order):
    the stdlib encoder builds a C encoder object per call, several times this cost."""
    head: RequestHead = ex.head
    fwd = ex.fwd
    endpoint = fwd.endpoint if fwd is not None else None
    connect_time = fwd.connect_time if fwd is not None else 0.0
    upstream_time = fwd.upstream_time if fwd is not None else 0.0
    return _LINE % (
        _CLOCK.stamp(), _quote(head.request_id),
        _quote(trace.trace_id) if trace is not None else "null",
        _quote(head.client_ip), _quote(head.method), _quote(head.host), _quote(head.path),
        ex.status, _json_str(route or None), _json_str(upstream or None),
        _quote(endpoint.key) if endpoint is not None else "null",
        head.body_received, ex.bytes_out, round(duration, 6),
        repr(round(connect_time, 6)) if connect_time else "null",
        repr(round(upstream_time, 6)) if upstream_time else "null",
        max(0, fwd.attempt - 1) if fwd is not None else 0, _json_str(ex.error_code),
        _quote(head.consumer.name) if head.consumer is not None else "null",
    )


def access_record(ex: Exchange, route: str, upstream: str, duration: float,
                  trace: Trace | None) -> dict[str, Any]:
    """The same record as a dict: the reference `access_line` is tested against."""
    head: RequestHead = ex.head
    fwd = ex.fwd
    return {
        "time": format_time(time.time()),
        "request_id": head.request_id,
        "trace_id": trace.trace_id if trace is not None else None,
        "client": head.client_ip,
        "method": head.method,
        "host": head.host,
        "path": head.path,
        "status": ex.status,
        "route": route or None,
        "upstream": upstream or None,
        "endpoint": fwd.endpoint.key if fwd is not None and fwd.endpoint is not None else None,
        "bytes_in": head.body_received,
        "bytes_out": ex.bytes_out,
        "duration": round(duration, 6),
        "upstream_connect": round(fwd.connect_time, 6) if fwd and fwd.connect_time else None,
        "upstream_response": (round(fwd.upstream_time, 6) if fwd and fwd.upstream_time
                              else None),
        "retries": max(0, fwd.attempt - 1) if fwd is not None else 0,
        "error_code": ex.error_code,
        "consumer": head.consumer.name if head.consumer is not None else None,
    }


def _span(ex: Exchange, route: str, upstream: str, trace: Trace) -> SpanRecord:
    head = ex.head
    attributes: dict[str, Any] = {
        "http.request.method": head.method,
        "url.path": head.path,
        "server.address": head.host,
        "client.address": head.client_ip,
        "http.response.status_code": ex.status,
        "http.route": route,
        "edgeward.upstream": upstream,
        "edgeward.request_id": head.request_id,
    }
    if ex.error_code:
        attributes["error.type"] = ex.error_code
    status = "error" if ex.status >= 500 or ex.status == 0 else "unset"
    return SpanRecord(trace.trace_id, trace.span_id, trace.parent_id, f"{head.method} {route}",
                      trace.start_ns, time.time_ns(), attributes, status,  # type: ignore[arg-type]
                      SPAN_KIND_SERVER)
