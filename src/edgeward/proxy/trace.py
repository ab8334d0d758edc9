"""W3C Trace Context per request: the sampling decision and the traceparent sent upstream.

Taken when the exchange starts, before any span object exists; an unsampled request costs a
sampler call and two ids. Spans are exported at the end (`edgeward.proxy.telemetry`).
"""

from __future__ import annotations

import random
import time

from edgeward.observe.otlp import OtlpHttpExporter
from edgeward.observe.tracing import (
    Sampler,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)


class Trace:
    """The trace identity of one sampled-or-forwarded request."""

    __slots__ = ("trace_id", "span_id", "parent_id", "sampled", "start_ns")

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None, sampled: bool,
                 start_ns: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.start_ns = start_ns


class Tracer:
    """W3C Trace Context for the listener: decide sampling, make the upstream traceparent."""

    __slots__ = ("sampler", "exporter", "rng")

    def __init__(self, sampler: Sampler, exporter: OtlpHttpExporter | None) -> None:
        self.sampler = sampler
        self.exporter = exporter
        self.rng = random.Random()

    def start(self, incoming: str | None) -> tuple[Trace, bytes]:
        """The request's Trace and the traceparent value to send upstream."""
        parent = parse_traceparent(incoming) if incoming else None
        rng = self.rng
        trace_id = parent.trace_id if parent is not None else new_trace_id(rng)
        sampled = self.sampler.decide(parent, trace_id)
        span_id = new_span_id(rng)
        start_ns = time.time_ns() if sampled and self.exporter is not None else 0
        trace = Trace(trace_id, span_id, parent.parent_id if parent else None, sampled,
                      start_ns)
        return trace, format_traceparent(trace_id, span_id, sampled).encode()
