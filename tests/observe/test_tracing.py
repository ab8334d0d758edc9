"""W3C Trace Context parsing, sampling, and span export to a real OTLP/HTTP receiver."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.observe.otel_env import resolve
from edgeward.observe.otlp import OtlpHttpExporter, RetryPolicy
from edgeward.observe.tracing import (
    DEFAULT_SAMPLE_RATIO,
    Sampler,
    SpanRecord,
    TraceContext,
    TracingConfig,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    parse_tracestate,
)
from edgeward.structs import ConfigError, load_struct

TID = "12345678901234567890123456789012"
PID = "1234567890123456"

# Cases from the W3C trace-context test suite (test/test.py) and spec section 3.2.
VALID = [
    (f"00-{TID}-{PID}-01", 0, True),
    (f"00-{TID}-{PID}-00", 0, False),
    (f"  00-{TID}-{PID}-01\t", 0, True),                      # optional whitespace around
    (f"cc-{TID}-{PID}-01", 0xCC, True),                        # future version, same shape
    (f"cc-{TID}-{PID}-01-what-the-future-will-be-like", 0xCC, True),
    (f"01-{TID}-{PID}-09", 1, True),                           # future: only sampled bit kept
    (f"00-{TID}-{PID}-02", 0, False),                          # unknown flag bits: not sampled
]
INVALID = [
    "",
    f"00-{'0' * 32}-{PID}-01",                                 # all-zero trace id
    f"00-{TID}-{'0' * 16}-01",                                 # all-zero parent id
    f"ff-{TID}-{PID}-01",                                      # version ff is forbidden
    f"00-{TID}-{PID}-01-what-the-future-will-be-like",          # v00 must be 55 chars
    f"cc-{TID}-{PID}-01.what-the-future-will-be-like",          # future: '-' after flags
    f"00-{TID.upper()[:-1]}A-{PID}-01",                         # uppercase hex
    f"00-1234567890123456789012345678901A-{PID}-01",
    f"00-{TID}-{PID[:-1]}A-01",
    f"00-{TID}-{PID}-0A",
    f"00-{TID[:-1]}g-{PID}-01",                                 # not hex
    f"00-{TID}-123456789012345.-01",
    f"00-{TID}1-{PID}-01",                                      # wrong lengths
    f"00-{TID[:-1]}-{PID}-01",
    f"00-{TID}-{PID}0-01",
    f"00-{TID}-{PID}-1",
    f"0-{TID}-{PID}-01",
    f"000-{TID}-{PID}-01",
    f"00_{TID}-{PID}-01",                                       # wrong separators
    f"00-{TID}_{PID}-01",
    f"00-{TID}-{PID}_01",
    f"0g-{TID}-{PID}-01",
    f"00-{TID}-{PID}-01\n",
    f"00- {TID}-{PID}-01",
]


@pytest.mark.parametrize(("header", "version", "sampled"), VALID)
def test_valid_traceparent(header: str, version: int, sampled: bool) -> None:
    ctx = parse_traceparent(header)
    assert ctx is not None
    assert (ctx.version, ctx.trace_id, ctx.parent_id, ctx.sampled) == (version, TID, PID, sampled)


@pytest.mark.parametrize("header", INVALID)
def test_invalid_traceparent_starts_a_new_trace(header: str) -> None:
    assert parse_traceparent(header) is None


def test_missing_traceparent() -> None:
    assert parse_traceparent(None) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_raises(text: str) -> None:
    ctx = parse_traceparent(text)
    if ctx is not None:
        assert len(ctx.trace_id) == 32 and len(ctx.parent_id) == 16


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
def test_format_then_parse_round_trips(trace: int, span: int, sampled: bool) -> None:
    header = format_traceparent(f"{trace:032x}", f"{span:016x}", sampled)
    ctx = parse_traceparent(header)
    assert ctx is not None
    assert (ctx.trace_id, ctx.parent_id, ctx.sampled) == (f"{trace:032x}", f"{span:016x}",
                                                            sampled)


@pytest.mark.parametrize(("raw", "expected"), [
    ("foo=1,bar=2", "foo=1,bar=2"),
    (["foo=1", "bar=2"], "foo=1,bar=2"),                       # several header lines
    (" foo=1 , ,bar=2,", "foo=1,bar=2"),                       # OWS and empty members
    ("tenant@vendor=x", "tenant@vendor=x"),
    ("foo=1,foo=2", None),                                     # duplicate key
    ("FOO=1", None),                                           # keys are lower case
    ("foo=a=b", None),
    ("foo", None),
    ("foo=", None),
    ("", None),
    (None, None),
    ("a" * 256 + "=1", "a" * 256 + "=1"),
    ("a" * 257 + "=1", None),
    (",".join(f"k{i}=v" for i in range(32)), ",".join(f"k{i}=v" for i in range(32))),
    (",".join(f"k{i}=v" for i in range(33)), None),            # more than 32 members
])
def test_tracestate(raw: Any, expected: str | None) -> None:
    assert parse_tracestate(raw) == expected


class _ZeroFirst(random.Random):
    """Returns 0 once, then real random bits: ids must never be all zero."""

    def __init__(self) -> None:
        super().__init__(7)
        self.zero = True

    def getrandbits(self, k: int) -> int:
        if self.zero:
            self.zero = False
            return 0
        return super().getrandbits(k)


def test_new_ids_are_lower_hex_and_never_zero() -> None:
    tid = new_trace_id(_ZeroFirst())
    sid = new_span_id(_ZeroFirst())
    assert len(tid) == 32 and tid != "0" * 32 and tid == tid.lower()
    assert len(sid) == 16 and sid != "0" * 16
    assert parse_traceparent(format_traceparent(tid, sid, True)) is not None
    assert new_trace_id(random.Random(1)) == new_trace_id(random.Random(1))


def test_ratio_zero_and_one() -> None:
    never, always = Sampler(0.0), Sampler(1.0)
    for tid in ("f" * 32, "0" * 31 + "1", new_trace_id(random.Random(3))):
        assert not never.decide(None, tid)
        assert always.decide(None, tid)


def test_sampling_fraction_follows_the_ratio() -> None:
    rng = random.Random(42)
    sampler = Sampler(0.25)
    kept = sum(sampler.decide(None, new_trace_id(rng)) for _ in range(20000))
    assert 0.23 < kept / 20000 < 0.27


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**128 - 1), st.floats(0, 1), st.floats(0, 1))
def test_decision_is_deterministic_and_consistent_across_ratios(
        trace: int, r1: float, r2: float) -> None:
    tid = f"{trace:032x}"
    low, high = sorted((r1, r2))
    # two gateways with the same ratio agree
    assert Sampler(low).decide(None, tid) == Sampler(low).decide(None, tid)
    # a trace kept at a low ratio is kept at any higher ratio (nested sets, as in OTel)
    if Sampler(low).decide(None, tid):
        assert Sampler(high).decide(None, tid)


def test_parent_based_follows_the_incoming_flag() -> None:
    tid = "f" * 32  # never sampled by ratio 0.01 on its own (low bits are the maximum)
    sampled_parent = parse_traceparent(f"00-{tid}-{PID}-01")
    unsampled_parent = parse_traceparent(f"00-{'0' * 31 + '1'}-{PID}-00")
    assert Sampler(0.0).decide(sampled_parent, tid)
    assert not Sampler(1.0).decide(unsampled_parent, "0" * 31 + "1")
    # without parent_based the trace id decides, the same way on every hop
    assert not Sampler(0.01, parent_based=False).decide(sampled_parent, tid)


def test_invalid_ratio_names_the_field() -> None:
    with pytest.raises(ValueError, match="sample_ratio.*1.5"):
        Sampler(1.5)


# ---------------------------------------------------------------------------------------------
# a real OTLP/HTTP receiver


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.posts: list[tuple[str, str, dict[str, Any]]] = []
        self.status = status
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(
                    (self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                receiver.got.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for _, _, body in self.posts:
            for rs in body["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out.extend(ss["spans"])
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _span(tid: str, sid: str, parent: str | None, name: str = "GET /orders") -> SpanRecord:
    return SpanRecord(tid, sid, parent, name, 1_700_000_000_000_000_000,
                      1_700_000_000_002_500_000,
                      {"http.request.method": "GET", "http.response.status_code": 200,
                       "edgeward.route": "orders", "edgeward.retried": False,
                       "edgeward.upstream_seconds": 0.0021},
                      status="ok")


def test_spans_arrive_at_the_collector_with_ids_parent_and_resource(receiver: Receiver) -> None:
    rng = random.Random(5)
    incoming = parse_traceparent(f"00-{TID}-{PID}-01")
    assert incoming is not None
    sampler = Sampler(DEFAULT_SAMPLE_RATIO)
    assert sampler.decide(incoming, incoming.trace_id)
    server_span = new_span_id(rng)
    client_span = new_span_id(rng)
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{receiver.port}", "edge-test",
                                flush_interval=0.05)
    exporter.start()
    try:
        assert exporter.export(_span(TID, server_span, incoming.parent_id))
        assert exporter.export(_span(TID, client_span, server_span, "upstream orders"))
        assert exporter.flush(5)
    finally:
        exporter.shutdown()
    path, ctype, body = receiver.posts[0]
    assert path == "/v1/traces" and ctype == "application/json"
    resource = body["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "edge-test"}} in resource
    spans = {s["spanId"]: s for s in receiver.spans()}
    assert spans[server_span]["traceId"] == TID
    assert spans[server_span]["parentSpanId"] == PID
    assert spans[client_span]["parentSpanId"] == server_span
    s = spans[server_span]
    assert s["startTimeUnixNano"] == "1700000000000000000"
    assert s["endTimeUnixNano"] == "1700000000002500000"
    assert s["status"] == {"code": 1}
    attrs = {a["key"]: a["value"] for a in s["attributes"]}
    assert attrs["http.response.status_code"] == {"intValue": "200"}
    assert attrs["edgeward.retried"] == {"boolValue": False}
    assert attrs["edgeward.upstream_seconds"] == {"doubleValue": 0.0021}
    assert exporter.exported == 2 and exporter.dropped == 0


def test_root_span_has_no_parent_and_batches_split(receiver: Receiver) -> None:
    rng = random.Random(9)
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{receiver.port}/", batch_size=2,
                                flush_interval=0.05, max_queue=10)
    exporter.start()
    ids = [new_trace_id(rng) for _ in range(5)]
    for tid in ids:
        exporter.export(_span(tid, new_span_id(rng), None))
    assert exporter.flush(5)
    exporter.shutdown()
    assert sorted(s["traceId"] for s in receiver.spans()) == sorted(ids)
    assert all("parentSpanId" not in s for s in receiver.spans())
    assert all(len(body["resourceSpans"][0]["scopeSpans"][0]["spans"]) <= 2
               for _, _, body in receiver.posts)
    assert len(receiver.posts) >= 3


def test_full_queue_drops_and_counts_without_blocking() -> None:
    exporter = OtlpHttpExporter("http://127.0.0.1:9", batch_size=1, max_queue=2)  # not started
    results = [exporter.export(_span(TID, new_span_id(random.Random(i)), None))
               for i in range(5)]
    assert results == [True, True, False, False, False]
    assert exporter.dropped == 3


def test_unreachable_collector_counts_failures() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{port}", flush_interval=0.05, max_queue=10,
                                batch_size=10)
    exporter.start()
    exporter.export(_span(TID, PID, None))
    assert exporter.flush(5)
    exporter.shutdown()
    assert exporter.failed_exports == 1 and exporter.dropped == 1 and exporter.exported == 0


def test_collector_error_status_counts_failures() -> None:
    r = Receiver(status=500)  # not a status to retry: one POST, the batch is dropped
    try:
        exporter = OtlpHttpExporter(f"http://127.0.0.1:{r.port}", flush_interval=0.05,
                                    retry=RetryPolicy(initial_backoff=0.01))
        exporter.start()
        exporter.export(_span(TID, PID, None))
        assert exporter.flush(5)
        exporter.shutdown()
        assert len(r.posts) == 1 and exporter.failed_exports == 1 and exporter.dropped == 1
    finally:
        r.close()


def test_exporter_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="otlp_endpoint"):
        OtlpHttpExporter("127.0.0.1:4318")
    with pytest.raises(ValueError, match="batch_size=10, max_queue=5"):
        OtlpHttpExporter("http://127.0.0.1:4318", batch_size=10, max_queue=5)


def test_tracing_config_defaults_are_pinned() -> None:
    cfg = load_struct(TracingConfig, {})
    assert cfg == TracingConfig(sample_ratio=None, parent_based=None, otlp_endpoint=None,
                                service_name=None, headers=None, compression=None,
                                timeout=None, resource_attributes=None, batch_size=512,
                                flush_interval=5.0, max_queue=2048)
    settings = resolve(cfg, {})
    assert settings.exporter() is None
    assert (settings.sample_ratio, settings.parent_based, settings.service_name,
            settings.compression, settings.timeout) == (0.01, True, "edgeward", "none", 10.0)


def test_tracing_config_from_yaml_shape() -> None:
    cfg = load_struct(TracingConfig, {"sample_ratio": 0.5, "otlp_endpoint": "http://127.0.0.1:4318",
                                      "flush_interval": "250ms"}, path="tracing")
    exporter = resolve(cfg, {}).exporter()
    assert exporter is not None and exporter.path == "/v1/traces" and exporter.port == 4318
    assert exporter.flush_interval == 0.25


def test_tracing_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(TracingConfig, {"sample_ratio": 1.5, "otlp_endpoint": "collector:4318",
                                    "max_queue": 10}, path="tracing")
    text = str(err.value)
    assert "tracing.sample_ratio: must be between 0 and 1, got 1.5" in text
    assert "tracing.otlp_endpoint" in text and "collector:4318" in text
    assert "tracing.max_queue: must be >= batch_size (512), got 10" in text


def test_trace_context_repr_is_the_header() -> None:
    assert repr(TraceContext(0, TID, PID, 1)) == f"<TraceContext 00-{TID}-{PID}-01>"
