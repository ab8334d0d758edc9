"""The gateway's metric families as a scrape shows them."""

from __future__ import annotations

import os
import sys

from edgeward.observe.gateway_metrics import (
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPEN,
    FAMILIES,
    GatewayMetrics,
)
from edgeward.observe.metrics import OVERFLOW_VALUE, merge, render_snapshot

sys.path.insert(0, os.path.dirname(__file__))
from promtext import parse_exposition  # noqa: E402

EXPECTED = {
    "edgeward_device_shadow_updates_total": ("counter", ("outcome",)),
    "edgeward_device_cas_conflicts_total": ("counter", ()),
    "edgeward_device_telemetry_total": ("counter", ("result",)),
    "edgeward_device_mqtt_messages_total": ("counter", ("kind",)),
    "edgeward_device_outbox_messages_total": ("counter", ("class", "outcome")),
    "edgeward_device_outbox_queued": ("gauge", ()),
    "edgeward_device_sessions": ("gauge", ()),
    "edgeward_device_session_messages_total": ("counter", ("kind",)),
    "edgeward_requests_total": ("counter", ("route", "upstream", "code")),
    "edgeward_request_duration_seconds": ("histogram", ("route",)),
    "edgeward_upstream_duration_seconds": ("histogram", ("route",)),
    "edgeward_upstream_requests_total": ("counter", ("upstream", "endpoint", "outcome")),
    "edgeward_upstream_attempt_duration_seconds": ("histogram", ("upstream",)),
    "edgeward_active_connections": ("gauge", ()),
    "edgeward_active_requests": ("gauge", ()),
    "edgeward_received_bytes_total": ("counter", ("route",)),
    "edgeward_sent_bytes_total": ("counter", ("route",)),
    "edgeward_circuit_breaker_state": ("gauge", ("upstream",)),
    "edgeward_circuit_breaker_states": ("gauge", ("upstream", "state")),
    "edgeward_outlier_ejections_total": ("counter", ("upstream",)),
    "edgeward_ratelimit_refused_total": ("counter", ("route",)),
    "edgeward_endpoint_healthy": ("gauge", ("upstream", "endpoint")),
    "edgeward_config_reloads_total": ("counter", ("result",)),
    "edgeward_config_info": ("gauge", ("hash",)),
    "edgeward_config_last_reload_timestamp_seconds": ("gauge", ()),
    "edgeward_retries_total": ("counter", ("route", "upstream")),
    "edgeward_auth_requests_total": ("counter", ("route", "method", "outcome")),
    "edgeward_consumer_requests_total": ("counter", ("route", "consumer")),
    "edgeward_canary_weight": ("gauge", ("route",)),
    "edgeward_canary_decisions_total": ("counter", ("route", "decision")),
    "edgeward_grpc_responses_total": ("counter", ("route", "grpc_status")),
    "edgeward_access_log_dropped_total": ("counter", ()),
    "edgeward_trace_spans_dropped_total": ("counter", ()),
    "edgeward_filter_errors_total": ("counter", ("route", "filter")),
    "edgeward_underscore_headers_total": ("counter", ()),
    "edgeward_mirror_requests_total": ("counter", ("route", "upstream", "result")),
    "edgeward_faults_injected_total": ("counter", ("route", "fault")),
    "edgeward_compressed_responses_total": ("counter", ("route", "algorithm")),
    "edgeward_cors_rejected_total": ("counter", ("route",)),
    "edgeward_ip_denied_total": ("counter", ("route",)),
    "edgeward_cache_requests_total": ("counter", ("route", "result")),
    "edgeward_cache_served_bytes_total": ("counter", ("route",)),
    "edgeward_cache_stored_bytes_total": ("counter", ("route",)),
    "edgeward_cache_purges_total": ("counter", ("kind", "source")),
    "edgeward_cache_shared_total": ("counter", ("route", "result")),
    "process_cpu_seconds_total": ("counter", ()),
    "process_resident_memory_bytes": ("gauge", ()),
    "process_open_fds": ("gauge", ()),
    "process_max_fds": ("gauge", ()),
    "process_start_time_seconds": ("gauge", ()),
    "edgeward_refused_connections_total": ("counter", ()),
    "edgeward_h2_glitches_total": ("counter", ("reason",)),
    "edgeward_open_files_exhausted_seconds_total": ("counter", ()),
    "edgeward_build_info": ("gauge", ("version", "python", "compiled")),
    "edgeward_websocket_tunnels_open": ("gauge", ("route",)),
    "edgeward_websocket_upgrades_total": ("counter", ("route", "outcome")),
    "edgeward_websocket_bytes_total": ("counter", ("route", "direction")),
    "edgeward_websocket_closed_total": ("counter", ("route", "reason")),
    "edgeward_websocket_pings_total": ("counter", ("route",)),
    "edgeward_websocket_paused_total": ("counter", ("route",)),
}


def test_declared_families_are_the_documented_contract() -> None:
    assert {s.name: (s.kind, s.labels) for s in FAMILIES} == EXPECTED
    _, types, _ = parse_exposition(GatewayMetrics().registry.render())
    assert types == {name: kind for name, (kind, _) in EXPECTED.items()}


def test_a_finished_request_shows_up_in_every_per_route_family() -> None:
    gm = GatewayMetrics()
    orders = gm.route("orders")
    assert gm.route("orders") is orders
    orders.finish("orders-v1", 200, duration=0.012, upstream_duration=0.010,
                  bytes_in=100, bytes_out=2048)
    orders.finish("orders-v1", 200, duration=0.004, upstream_duration=0.003,
                  bytes_in=0, bytes_out=10)
    orders.finish("", 429, duration=0.0001, upstream_duration=None, bytes_in=0, bytes_out=60)
    orders.ratelimit_refused.inc()
    orders.retries("orders-v1").inc()
    s = parse_exposition(gm.registry.render())[2]
    req = "edgeward_requests_total"
    assert s[(req, (("code", "200"), ("route", "orders"), ("upstream", "orders-v1")))] == 2
    assert s[(req, (("code", "429"), ("route", "orders"), ("upstream", "")))] == 1
    assert s[("edgeward_request_duration_seconds_count", (("route", "orders"),))] == 3
    assert s[("edgeward_upstream_duration_seconds_count", (("route", "orders"),))] == 2
    # gateway time = total - upstream
    total = s[("edgeward_request_duration_seconds_sum", (("route", "orders"),))]
    upstream = s[("edgeward_upstream_duration_seconds_sum", (("route", "orders"),))]
    assert abs((total - upstream) - 0.0031) < 1e-9
    assert s[("edgeward_received_bytes_total", (("route", "orders"),))] == 100
    assert s[("edgeward_sent_bytes_total", (("route", "orders"),))] == 2118
    assert s[("edgeward_ratelimit_refused_total", (("route", "orders"),))] == 1
    assert s[("edgeward_retries_total", (("route", "orders"), ("upstream", "orders-v1")))] == 1


def test_upstream_breaker_health_and_gauges() -> None:
    gm = GatewayMetrics()
    gm.upstream_request("orders", "10.0.0.1:80", "success").inc()
    gm.upstream_request("orders", "10.0.0.1:80", "timeout").inc()
    gm.circuit_state("orders").set(CIRCUIT_OPEN)
    gm.circuit_state("users").set(CIRCUIT_HALF_OPEN)
    gm.outlier_ejection("orders").inc()
    gm.endpoint_healthy("orders", "10.0.0.1:80").set(1)
    gm.endpoint_healthy("orders", "10.0.0.2:80").set(0)
    gm.forget_endpoint("orders", "10.0.0.1:80")
    gm.active_connections.inc(3)
    gm.active_requests.inc()
    s = parse_exposition(gm.registry.render())[2]
    key = (("endpoint", "10.0.0.1:80"), ("outcome", "timeout"), ("upstream", "orders"))
    assert s[("edgeward_upstream_requests_total", key)] == 1
    assert s[("edgeward_circuit_breaker_state", (("upstream", "orders"),))] == 1
    assert s[("edgeward_circuit_breaker_state", (("upstream", "users"),))] == 2
    assert s[("edgeward_outlier_ejections_total", (("upstream", "orders"),))] == 1
    health = {k: v for k, v in s.items() if k[0] == "edgeward_endpoint_healthy"}
    assert health == {("edgeward_endpoint_healthy",
                       (("endpoint", "10.0.0.2:80"), ("upstream", "orders"))): 0}
    assert s[("edgeward_active_connections", ())] == 3
    assert s[("edgeward_active_requests", ())] == 1


def test_config_reloads_keep_one_info_hash_and_refusals_do_not_move_it() -> None:
    gm = GatewayMetrics()
    gm.config_loaded(True, "aaa111", wall_now=1000.0)
    gm.config_loaded(True, "bbb222", wall_now=2000.0)
    gm.config_loaded(False, None, wall_now=3000.0)
    s = parse_exposition(gm.registry.render())[2]
    info = {k: v for k, v in s.items() if k[0] == "edgeward_config_info"}
    assert info == {("edgeward_config_info", (("hash", "bbb222"),)): 1}
    assert s[("edgeward_config_last_reload_timestamp_seconds", ())] == 2000
    assert s[("edgeward_config_reloads_total", (("result", "ok"),))] == 2
    assert s[("edgeward_config_reloads_total", (("result", "error"),))] == 1


def test_merge_of_workers_sums_traffic_but_not_breaker_state_or_info() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    for gm, n in ((a, 2), (b, 3)):
        gm.active_connections.set(n)
        gm.circuit_state("orders").set(CIRCUIT_OPEN if n == 2 else 0)
        gm.config_loaded(True, "same", wall_now=100.0 * n)
        gm.route("r").finish("u", 200, 0.01, 0.005, 1, 1)
    s = parse_exposition(render_snapshot(merge([a.registry.snapshot(),
                                                b.registry.snapshot()])))[2]
    assert s[("edgeward_active_connections", ())] == 5
    assert s[("edgeward_circuit_breaker_state", (("upstream", "orders"),))] == 1
    assert s[("edgeward_config_info", (("hash", "same"),))] == 1
    assert s[("edgeward_config_last_reload_timestamp_seconds", ())] == 300
    assert s[("edgeward_requests_total", (("code", "200"), ("route", "r"), ("upstream", "u")))] == 2


def test_drop_counters_are_read_from_their_owners_at_scrape_time() -> None:
    gm = GatewayMetrics()
    drops = {"log": 0, "spans": 0}
    gm.bind_drop_counters(lambda: drops["log"], lambda: drops["spans"])
    drops["log"], drops["spans"] = 7, 3
    s = parse_exposition(gm.registry.render())[2]
    assert s[("edgeward_access_log_dropped_total", ())] == 7
    assert s[("edgeward_trace_spans_dropped_total", ())] == 3


def test_route_label_explosion_is_capped() -> None:
    gm = GatewayMetrics()
    for i in range(1005):
        gm.route(f"r{i}").finish("u", 200, 0.01, None, 0, 0)
    s = parse_exposition(gm.registry.render())[2]
    routes = {dict(k[1])["route"] for k in s if k[0] == "edgeward_request_duration_seconds_count"}
    assert len(routes) == 1001 and OVERFLOW_VALUE in routes
    assert s[("edgeward_request_duration_seconds_count", (("route", OVERFLOW_VALUE),))] == 5


def test_filter_event_totals_become_counter_values() -> None:
    gm = GatewayMetrics()
    counts = {("mirror", "api", "shadow", "ok"): 3, ("fault", "api", "abort", ""): 2,
              ("compress", "api", "zstd", ""): 5, ("cors_rejected", "api", "", ""): 1,
              ("ip_denied", "web", "", ""): 4, ("unknown_family", "api", "", ""): 9}
    gm.filter_counts(counts)
    counts[("mirror", "api", "shadow", "ok")] = 4  # totals only grow; set again at next read
    gm.filter_counts(counts)
    s = parse_exposition(gm.registry.render())[2]
    assert s[("edgeward_mirror_requests_total",
              (("result", "ok"), ("route", "api"), ("upstream", "shadow")))] == 4
    assert s[("edgeward_faults_injected_total", (("fault", "abort"), ("route", "api")))] == 2
    assert s[("edgeward_compressed_responses_total",
              (("algorithm", "zstd"), ("route", "api")))] == 5
    assert s[("edgeward_cors_rejected_total", (("route", "api"),))] == 1
    assert s[("edgeward_ip_denied_total", (("route", "web"),))] == 4
    assert not any(name.startswith("unknown") for name, _ in s)


def test_websocket_counts_are_copied_from_the_worker_book() -> None:
    from edgeward.proxy.upgrade import WebSocketBook

    m = GatewayMetrics()
    book = WebSocketBook()
    stats = book.route("chat")
    stats.open, stats.bytes_up, stats.bytes_down, stats.pauses = 3, 100, 2000, 1
    stats.end("idle_timeout")
    book.count("chat", "upgraded")
    book.count("chat", "upgraded")
    book.count("chat", "refused")
    m.websocket_counts(book)
    s = parse_exposition(m.registry.render())[2]
    assert s[("edgeward_websocket_tunnels_open", (("route", "chat"),))] == 3
    assert s[("edgeward_websocket_bytes_total",
              (("direction", "to_upstream"), ("route", "chat")))] == 100
    assert s[("edgeward_websocket_bytes_total",
              (("direction", "to_client"), ("route", "chat")))] == 2000
    assert s[("edgeward_websocket_upgrades_total",
              (("outcome", "upgraded"), ("route", "chat")))] == 2
    assert s[("edgeward_websocket_closed_total",
              (("reason", "idle_timeout"), ("route", "chat")))] == 1
    assert s[("edgeward_websocket_paused_total", (("route", "chat"),))] == 1
    stats.open = 0
    m.websocket_counts(book)  # a gauge follows the book down as well as up
    s = parse_exposition(m.registry.render())[2]
    assert s[("edgeward_websocket_tunnels_open", (("route", "chat"),))] == 0


def test_breaker_states_are_one_series_each_with_the_numeric_gauge_kept() -> None:
    gm = GatewayMetrics()
    gm.breaker_entered("orders", "closed")
    gm.breaker_entered("users", "closed")
    gm.breaker_entered("orders", "open")
    gm.breaker_entered("orders", "half_open")
    s = parse_exposition(gm.registry.render())[2]
    per_state = {dict(k[1])["state"]: v for k, v in s.items()
                 if k[0] == "edgeward_circuit_breaker_states"
                 and dict(k[1])["upstream"] == "orders"}
    assert per_state == {"closed": 0, "open": 0, "half_open": 1}
    assert s[("edgeward_circuit_breaker_state", (("upstream", "orders"),))] == CIRCUIT_HALF_OPEN
    assert s[("edgeward_circuit_breaker_state", (("upstream", "users"),))] == 0
    assert s[("edgeward_circuit_breaker_states",
              (("state", "closed"), ("upstream", "users")))] == 1


def test_per_state_breaker_series_merge_as_any_worker_in_that_state() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.breaker_entered("orders", "open")
    b.breaker_entered("orders", "closed")
    s = parse_exposition(render_snapshot(merge([a.registry.snapshot(),
                                                b.registry.snapshot()])))[2]
    assert s[("edgeward_circuit_breaker_states", (("state", "open"), ("upstream", "orders")))] == 1
    assert s[("edgeward_circuit_breaker_states",
              (("state", "closed"), ("upstream", "orders")))] == 1
    assert s[("edgeward_circuit_breaker_state", (("upstream", "orders"),))] == CIRCUIT_OPEN
