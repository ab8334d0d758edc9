"""Cost of the per-request observability operations, in nanoseconds per call.

    python benchmarks/bench_observe.py [--loops N]

Each figure is the best of 7 repeats of N executions of a statement (timeit, no lambda
wrapper) minus the cost of an empty statement, timed in process CPU time (so other
processes on a shared machine inflate it less than wall time): what the hot path pays.
A raw `x.value += 1.0` attribute add is printed as the floor to compare against; on a loaded
machine every figure scales together, so read them relative to that floor too.
"""

from __future__ import annotations

import argparse
import random
import time
import timeit

from edgeward.observe.access_log import AccessLog, AccessLogConfig
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.observe.metrics import Registry
from edgeward.observe.otlp import OtlpHttpExporter
from edgeward.observe.tracing import (
    Sampler,
    SpanRecord,
    new_trace_id,
    parse_traceparent,
)


def measure(stmt: str, env: dict[str, object], loops: int) -> float:
    best = min(timeit.repeat(stmt, timer=time.process_time, globals=env, number=loops,
                             repeat=7))
    empty = min(timeit.repeat("pass", timer=time.process_time, globals=env, number=loops,
                              repeat=7))
    return max(0.0, (best - empty) / loops * 1e9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=200_000)
    loops = parser.parse_args().loops

    reg = Registry()
    counter = reg.counter("c_total", "c", ["route"]).labels("orders")
    gauge = reg.gauge("g", "g").labels()
    hist = reg.histogram("h_seconds", "h", ["route"]).labels("orders")
    family = reg.counter("f_total", "f", ["route", "upstream", "code"])
    family.labels("orders", "orders", "200")

    gm = GatewayMetrics()
    route = gm.route("orders")

    rng = random.Random(1)
    sampler = Sampler(0.01)
    unsampled_parent = parse_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    root_ids = [new_trace_id(rng) for _ in range(1000)]
    root_unsampled = next(t for t in root_ids if not sampler.decide(None, t))
    off = Sampler(0.0)
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    exporter = OtlpHttpExporter("http://127.0.0.1:9", max_queue=10**9)  # not started
    span = SpanRecord("ab" * 16, "cd" * 8, None, "GET", 0, 1)
    alog = AccessLog(AccessLogConfig(path="/dev/null", max_queue=10**9))  # not started
    record = {"status": 200}

    env = {**globals(), **locals()}
    rows: list[tuple[str, str]] = [
        ("floor: raw attribute add x.value += 1.0", "counter.value += 1.0"),
        ("counter.inc() (cached child)", "counter.inc()"),
        ("gauge.inc() (cached child)", "gauge.inc()"),
        ("histogram.observe(v) (cached child, 15 buckets)", "hist.observe(0.012)"),
        ("family.labels(3 values) (cache hit)", "family.labels('orders', 'orders', '200')"),
        ("RouteMetrics.finish() (counter+2 histograms+2 adds)",
         "route.finish('orders', 200, 0.012, 0.01, 100, 2048)"),
        ("sampler.decide(unsampled parent)", "sampler.decide(unsampled_parent, '')"),
        ("sampler.decide(no parent, ratio 0.01, unsampled id)",
         "sampler.decide(None, root_unsampled)"),
        ("sampler.decide(no parent, ratio 0)", "off.decide(None, root_unsampled)"),
        ("new_trace_id(rng)", "new_trace_id(rng)"),
        ("parse_traceparent(valid header)", "parse_traceparent(header)"),
        ("exporter.export(span) (enqueue only)", "exporter.export(span)"),
        ("access_log.log(record) (enqueue only)", "alog.log(record)"),
    ]
    print(f"{'operation':55s} {'ns/call':>8s}")
    for name, stmt in rows:
        print(f"{name:55s} {measure(stmt, env, loops):8.0f}")


if __name__ == "__main__":
    main()
