"""The OTLP/HTTP exporter against a real HTTP receiver on 127.0.0.1 that decodes what it gets:
custom headers, gzip bodies, retries of 429/502/503/504 honouring Retry-After, bounds."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.collector import Collector

from edgeward.observe.otlp import OtlpHttpExporter, RetryPolicy, retry_after, traces_url
from edgeward.observe.tracing import SpanRecord

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.02)


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def _span(sid: str = "00f067aa0ba902b7") -> SpanRecord:
    return SpanRecord(TID, sid, None, "GET /orders", 1, 2, {"edgeward.route": "orders"})


def _send(exporter: OtlpHttpExporter, n: int = 1) -> None:
    exporter.start()
    try:
        for i in range(n):
            assert exporter.export(_span(f"{i + 1:016x}"))
        assert exporter.flush(10)
    finally:
        exporter.shutdown()


def test_headers_gzip_and_resource_reach_the_collector(collector: Collector) -> None:
    exporter = OtlpHttpExporter(
        f"http://127.0.0.1:{collector.port}", "edge-a", flush_interval=0.05,
        headers={"x-api-key": "k1", "authorization": "Bearer t"}, compression="gzip",
        resource={"deployment.environment": "prod", "service.name": "not this"})
    _send(exporter, 3)
    ((path, headers, body),) = collector.posts
    assert path == "/v1/traces"
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/json"
    assert headers["x-api-key"] == "k1" and headers["authorization"] == "Bearer t"
    attrs = {a["key"]: a["value"]["stringValue"]
             for a in body["resourceSpans"][0]["resource"]["attributes"]}
    assert attrs == {"deployment.environment": "prod", "service.name": "edge-a"}
    assert len(body["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 3
    assert exporter.exported == 3 and exporter.retries == 0


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_until_accepted(collector: Collector,
                                                       status: int) -> None:
    collector.script = [(status, None), (status, None)]
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}", flush_interval=0.05,
                                retry=FAST, compression="gzip")
    _send(exporter)
    assert len(collector.posts) == 3
    assert collector.posts[0][2] == collector.posts[2][2]  # the same batch each time
    assert (exporter.exported, exporter.retries, exporter.dropped) == (1, 2, 0)


def test_retry_after_is_honoured(collector: Collector) -> None:
    collector.script = [(503, "1")]
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}", flush_interval=0.05,
                                retry=FAST)
    _send(exporter)
    first, second = collector.times
    # The policy alone would have waited at most 0.02 s: the collector's 1 s was kept.
    assert second - first >= 0.9
    assert exporter.exported == 1


def test_retries_are_bounded_then_the_batch_is_dropped(collector: Collector) -> None:
    collector.script = [(429, None)] * 10
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}", flush_interval=0.05,
                                retry=RetryPolicy(max_attempts=3, initial_backoff=0.01))
    _send(exporter)
    assert len(collector.posts) == 3
    assert (exporter.exported, exporter.failed_exports, exporter.dropped) == (0, 1, 1)


def test_a_retry_after_beyond_the_time_bound_is_not_waited_for(collector: Collector) -> None:
    collector.script = [(503, "3600")]
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}", flush_interval=0.05,
                                retry=RetryPolicy(max_retry_after=30.0, max_elapsed=5.0))
    started = time.monotonic()
    _send(exporter)
    assert time.monotonic() - started < 5  # 30 s (the cut) is past max_elapsed: no wait
    assert len(collector.posts) == 1 and exporter.dropped == 1


def test_other_statuses_are_not_retried(collector: Collector) -> None:
    collector.script = [(400, None)]
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}", flush_interval=0.05,
                                retry=FAST)
    _send(exporter)
    assert len(collector.posts) == 1 and exporter.failed_exports == 1


def test_a_signal_specific_endpoint_is_used_as_it_is(collector: Collector) -> None:
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{collector.port}/custom/traces?x=1",
                                flush_interval=0.05, exact_path=True)
    _send(exporter)
    assert collector.posts[0][0] == "/custom/traces?x=1"
    assert traces_url("http://c:4318", exact=False).path == "/v1/traces"
    assert traces_url("http://c:4318/base/", exact=False).path == "/base/v1/traces"
    assert traces_url("http://c:4318", exact=True).path == "/"


def test_retry_after_reads_seconds_and_dates() -> None:
    now = 1_800_000_000.0
    assert retry_after("7", now) == 7.0
    assert retry_after("Fri, 15 Jan 2027 08:00:30 GMT", now) == 30.0
    assert retry_after("Fri, 15 Jan 2027 07:00:00 GMT", now) == 0.0
    assert retry_after(None, now) is None and retry_after("soon", now) is None


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_and_stays_within_its_cap(retry: int, seed: int) -> None:
    policy = RetryPolicy()
    wait = policy.backoff(retry, random.Random(seed))
    full = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (retry - 1))
    assert full / 2 <= wait <= full <= policy.max_backoff
