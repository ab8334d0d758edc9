"""W3C trace context through a real gateway, with spans exported to a real OTLP/HTTP receiver.

The receiver is an `http.server` on 127.0.0.1 that keeps every JSON body POSTed to
/v1/traces; the origin echoes the headers it received, so the test sees exactly the
traceparent the gateway forwarded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.observability.obskit import AdminGateway, get, wait_until
from tests.support.gateway import GatewayProcess, free_port
from tests.support.origin import Origin

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")


class OtlpReceiver:
    """Collects OTLP/HTTP JSON export requests."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        lock = self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    outer.paths.append(self.path)
                    outer.content_types.append(self.headers.get("content-type", ""))
                    outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with self.lock:
            for body in self.bodies:
                for rs in body["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        out.extend(ss["spans"])
        return out

    def span_for(self, trace_id: str) -> dict[str, Any]:
        found = wait_until(lambda: [s for s in self.spans() if s["traceId"] == trace_id],
                           timeout=5, what=f"a span of trace {trace_id}")
        assert len(found) == 1, found
        return found[0]


def gateway_config(origin: Origin, receiver: OtlpReceiver, ratio: float) -> str:
    return f"""
listen: "{{listen}}"
admin: "{{admin}}"
tracing:
  sample_ratio: {ratio}
  otlp_endpoint: http://127.0.0.1:{receiver.port}/v1/traces
  service_name: edge-e2e
  flush_interval: 100ms
upstreams:
  o: {{targets: ["{origin.address}"]}}
  dead: {{targets: ["127.0.0.1:{free_port()}"]}}
routes:
  - {{name: api, match: {{path_prefix: /api}}, upstream: o}}
  - {{name: broken, match: {{path_prefix: /broken}}, upstream: dead}}
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def traced(origin: Origin) -> Iterator[tuple[AdminGateway, OtlpReceiver]]:
    with OtlpReceiver() as receiver, AdminGateway(gateway_config(origin, receiver, 1.0)) as gw:
        yield gw, receiver


def forwarded_traceparent(gw: AdminGateway, path: str,
                          headers: dict[str, str] | None = None) -> tuple[str, str, str]:
    reply = get(gw.port, path, headers)
    assert reply.status == 200, reply
    sent = [v for n, v in reply.json()["headers"] if n.lower() == "traceparent"]
    assert len(sent) == 1, sent
    m = TRACEPARENT_RE.match(sent[0])
    assert m, sent[0]
    return m.group(1), m.group(2), m.group(3)


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def test_incoming_trace_is_continued_with_the_gateways_own_span(
        traced: tuple[AdminGateway, OtlpReceiver]) -> None:
    gw, receiver = traced
    trace_id, span_id, flags = forwarded_traceparent(
        gw, "/api/orders/7", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert trace_id == TRACE_ID
    assert span_id != PARENT_ID and span_id != "0" * 16
    assert flags == "01"

    span = receiver.span_for(TRACE_ID)
    assert span["spanId"] == span_id
    assert span["parentSpanId"] == PARENT_ID
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    attrs = attributes(span)
    assert attrs["http.route"] == "api"
    assert attrs["edgeward.upstream"] == "o"
    assert int(attrs["http.response.status_code"]) == 200
    assert receiver.paths[0] == "/v1/traces"
    assert receiver.content_types[0].startswith("application/json")
    resource = {a["key"]: a["value"]["stringValue"]
                for a in receiver.bodies[0]["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == "edge-e2e"


def test_without_traceparent_a_new_trace_is_started_and_forwarded(
        traced: tuple[AdminGateway, OtlpReceiver]) -> None:
    gw, receiver = traced
    first = forwarded_traceparent(gw, "/api/a")
    second = forwarded_traceparent(gw, "/api/b")
    assert first[0] != second[0]  # a fresh trace per request
    for trace_id, span_id, flags in (first, second):
        assert trace_id != "0" * 32 and flags == "01"
        span = receiver.span_for(trace_id)
        assert span["spanId"] == span_id
        assert not span.get("parentSpanId")  # a root span


def test_an_invalid_traceparent_starts_a_new_trace(
        traced: tuple[AdminGateway, OtlpReceiver]) -> None:
    gw, _ = traced
    trace_id, _, _ = forwarded_traceparent(
        gw, "/api/c", {"traceparent": f"00-{'0' * 32}-{PARENT_ID}-01"})
    assert trace_id != "0" * 32


def test_a_gateway_error_body_carries_the_trace_id(
        traced: tuple[AdminGateway, OtlpReceiver]) -> None:
    gw, receiver = traced
    other = "a" * 31 + "b"
    for path, status, code in [("/broken", 502, "upstream_connect_failed"),
                               ("/nowhere", 404, "route_not_found")]:
        reply = get(gw.port, path, {"traceparent": f"00-{other}-{PARENT_ID}-01"})
        assert reply.status == status
        doc = reply.json()
        assert doc["code"] == code
        assert doc["trace_id"] == other
        assert doc["request_id"]
    spans = wait_until(lambda: (lambda f: f if len(f) == 2 else None)(
        [s for s in receiver.spans() if s["traceId"] == other]), timeout=5,
        what="two error spans")
    codes = sorted(int(attributes(s)["http.response.status_code"]) for s in spans)
    assert codes == [404, 502]
    assert {s["status"].get("code") for s in spans if
            int(attributes(s)["http.response.status_code"]) == 502} == {2}  # STATUS_CODE_ERROR


def test_sample_ratio_zero_exports_nothing_but_still_forwards_ids(origin: Origin) -> None:
    with OtlpReceiver() as receiver:
        with AdminGateway(gateway_config(origin, receiver, 0.0)) as gw:
            trace_id, span_id, flags = forwarded_traceparent(gw, "/api/x")
            assert flags == "00" and trace_id != "0" * 32
            t2, s2, f2 = forwarded_traceparent(
                gw, "/api/y", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
            assert (t2, f2) == (TRACE_ID, "00") and s2 != PARENT_ID
            # Unsampled but propagated: the error still names the trace the origin logs.
            err = get(gw.port, "/nowhere", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
            assert err.status == 404 and err.json()["trace_id"] == TRACE_ID
            time.sleep(0.5)  # five flush intervals
        # The gateway has stopped, and flushed its exporter on the way out.
        assert receiver.spans() == []


def test_without_tracing_error_bodies_carry_no_trace_id() -> None:
    with GatewayProcess.proxy(f"127.0.0.1:{free_port()}") as dead:
        # An incoming traceparent is not adopted when tracing is off.
        err = get(dead.port, "/x", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert err.status == 502
    doc = err.json()
    assert doc["code"] == "upstream_connect_failed" and "trace_id" not in doc


def test_otel_variables_alone_trace_with_headers_gzip_resource_and_retries(
        origin: Origin) -> None:
    """No `tracing:` section: the standard OTEL_* variables turn tracing on; the collector
    throttles the first export (429, Retry-After: 1) and gets the same batch again."""
    from tests.support.collector import Collector

    collector = Collector()
    collector.script = [(429, "1")]
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}/otlp/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr%3Dt",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "edge-from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    text = f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - {{name: api, match: {{path_prefix: /api}}, upstream: o}}
"""
    try:
        with AdminGateway(text, env=env) as gw:
            trace_id, span_id, flags = forwarded_traceparent(gw, "/api/env")
            assert flags == "01"  # always_on, not the 1 % default
            wait_until(lambda: len(collector.posts) >= 2 or None, timeout=15,
                       what="the export sent again after the 429")
        throttled, accepted = collector.posts[0], collector.posts[1]
        spans = accepted[2]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert [(s["traceId"], s["spanId"]) for s in spans] == [(trace_id, span_id)]
        assert throttled[2] == accepted[2]  # the same batch, sent again
        assert collector.times[1] - collector.times[0] >= 0.9  # Retry-After: 1 was kept
        path, headers, body = accepted
        assert path == "/otlp/traces"  # the signal-specific URL, as it is
        assert headers["content-encoding"] == "gzip" and headers["x-api-key"] == "s3cr=t"
        resource = {a["key"]: a["value"]["stringValue"]
                    for a in body["resourceSpans"][0]["resource"]["attributes"]}
        assert resource == {"deployment.environment": "staging",
                            "service.name": "edge-from-env"}
    finally:
        collector.close()
