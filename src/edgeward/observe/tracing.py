"""W3C Trace Context propagation, head sampling, span records and an OTLP/HTTP JSON exporter.

Per request the shell does, in this order:
  1. `parent = parse_traceparent(headers.get("traceparent"))` (None when absent or invalid;
     only when it is valid is `tracestate` carried: `parse_tracestate(...)`),
  2. `trace_id = parent.trace_id if parent else new_trace_id(rng)`,
  3. `sampled = sampler.decide(parent, trace_id)` -- BEFORE any span object exists; an
     unsampled request never builds a SpanRecord,
  4. forwards `format_traceparent(trace_id, span_id, sampled)` upstream,
  5. if sampled, builds a `SpanRecord` at the end and hands it to `OtlpHttpExporter.export`.

The sampler is deterministic in the trace id (OpenTelemetry's TraceIdRatioBased: the lower 64
bits of the id compared with ratio * 2**64), so every gateway and service that uses the same
ratio takes the same decision for the same trace, and parent-based: an incoming sampled flag
is followed (OTel's default ParentBased root sampler).

Parsing follows https://www.w3.org/TR/trace-context/ section 3.2 and 4.3: lowercase hex only,
all-zero trace-id or parent-id is invalid, version ff is invalid, version 00 is exactly 55
characters, a higher (future) version is parsed as 00 when it is at least 55 characters and
anything after char 55 starts with "-"; for a future version only the sampled bit of the
flags is kept.
"""

from __future__ import annotations

import random
import re
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from edgeward.values import Duration, doc

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_BYTE = {f"{i:02x}": i for i in range(256)}  # two lowercase hex digits -> int, no int() call
FLAG_SAMPLED = 0x01

# tracestate limits from the W3C spec section 3.3: at most 32 list members; keys are
# simple (lcalpha then lcalpha/digit/_-*/) up to 256 chars, or tenant@system multi-tenant keys;
# values are up to 256 printable ASCII characters without ',' and '=' and not ending in space.
TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_KEY = re.compile(
    r"^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$"
)
_TRACESTATE_VALUE = re.compile(
    r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$"
)


class TraceContext:
    """A valid incoming traceparent (and the tracestate that came with it)."""

    __slots__ = ("version", "trace_id", "parent_id", "flags", "tracestate")

    def __init__(self, version: int, trace_id: str, parent_id: str, flags: int,
                 tracestate: str | None = None) -> None:
        self.version = version
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.flags = flags
        self.tracestate = tracestate

    @property
    def sampled(self) -> bool:
        return bool(self.flags & FLAG_SAMPLED)

    def __repr__(self) -> str:
        return (f"<TraceContext {self.version:02x}-{self.trace_id}-{self.parent_id}"
                f"-{self.flags:02x}>")


_TRACEPARENT = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL
)


def parse_traceparent(value: str | None) -> TraceContext | None:
    """Parse a `traceparent` header value; None if absent or invalid (then the request starts
    a new trace, and its `tracestate` must be ignored)."""
    if not value:
        return None
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    version_text, trace_id, parent_id, flags_text, rest = m.groups()
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    flags = _BYTE[flags_text]
    if version_text == "00":
        if rest is not None:
            return None
        version = 0
    elif version_text == "ff":
        return None
    else:
        version = _BYTE[version_text]
        flags &= FLAG_SAMPLED
    return TraceContext(version, trace_id, parent_id, flags)


def parse_tracestate(values: str | Iterable[str] | None) -> str | None:
    """Validate and normalise `tracestate` (several header lines are joined with ","). Empty
    members are dropped; an invalid member, a repeated key or more than 32 members make the
    whole header invalid (None), as the spec allows."""
    if values is None:
        return None
    text = values if isinstance(values, str) else ",".join(values)
    members: list[str] = []
    keys: set[str] = set()
    for raw in text.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, eq, val = member.partition("=")
        if not eq or not _TRACESTATE_KEY.match(key) or not _TRACESTATE_VALUE.match(val):
            return None
        if key in keys:
            return None
        keys.add(key)
        members.append(member)
    if not members or len(members) > TRACESTATE_MAX_MEMBERS:
        return None
    return ",".join(members)


def format_traceparent(trace_id: str, span_id: str, sampled: bool) -> str:
    """The traceparent to send upstream: always version 00, our span as the parent."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def new_trace_id(rng: random.Random) -> str:
    """32 lowercase hex digits, never all zero. The whole id is random, so the lower 64 bits
    the sampler reads are uniform (W3C level 2 asks for randomness in the rightmost 7 bytes)."""
    while True:
        bits = rng.getrandbits(128)
        if bits:
            return bits.to_bytes(16, "big").hex()  # 2.5x faster than f"{bits:032x}"


def new_span_id(rng: random.Random) -> str:
    """16 lowercase hex digits, never all zero."""
    while True:
        bits = rng.getrandbits(64)
        if bits:
            return bits.to_bytes(8, "big").hex()


class Sampler:
    """Head sampling: ratio of new traces kept, deterministic in the trace id.

    `decide(parent, trace_id)`: with a parent and `parent_based`, follow the parent's sampled
    flag (one attribute read); otherwise keep the trace when the lower 64 bits of the id are
    below ratio * 2**64. Ratio 0 costs one comparison and never parses the id.
    """

    __slots__ = ("ratio", "bound", "parent_based")

    def __init__(self, ratio: float, *, parent_based: bool = True) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"sample_ratio must be between 0 and 1, got {ratio!r}")
        self.ratio = ratio
        self.bound = round(ratio * (1 << 64))
        self.parent_based = parent_based

    def sample_trace_id(self, trace_id: str) -> bool:
        return self.bound != 0 and int(trace_id[16:], 16) < self.bound

    def decide(self, parent: TraceContext | None, trace_id: str) -> bool:
        if parent is not None and self.parent_based:
            return bool(parent.flags & FLAG_SAMPLED)
        return self.bound != 0 and int(trace_id[16:], 16) < self.bound


SpanStatus = Literal["unset", "ok", "error"]
_STATUS_CODE = {"unset": 0, "ok": 1, "error": 2}
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3


class SpanRecord:
    """A finished span. Times are Unix epoch nanoseconds (OTLP's unit), given by the shell."""

    __slots__ = ("trace_id", "span_id", "parent_span_id", "name", "start_ns", "end_ns",
                 "attributes", "status", "kind")

    def __init__(self, trace_id: str, span_id: str, parent_span_id: str | None, name: str,
                 start_ns: int, end_ns: int, attributes: dict[str, Any] | None = None,
                 status: SpanStatus = "unset", kind: int = SPAN_KIND_SERVER) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.attributes = attributes if attributes is not None else {}
        self.status: SpanStatus = status
        self.kind = kind

    def __repr__(self) -> str:
        return f"<SpanRecord {self.name} {self.trace_id}/{self.span_id} {self.status}>"


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in proto3 JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def span_to_otlp(span: SpanRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in span.attributes.items()],
        "status": {"code": _STATUS_CODE[span.status]},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def otlp_request_body(spans: Iterable[SpanRecord], service_name: str,
                      resource: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An ExportTraceServiceRequest in OTLP/JSON (hex ids, as OTLP/HTTP JSON requires), with
    the resource's attributes (`service.name` last, so it wins)."""
    attributes = {**(resource or {}), "service.name": service_name}
    return {"resourceSpans": [{
        "resource": {"attributes": [
            {"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]},
        "scopeSpans": [{
            "scope": {"name": "edgeward"},
            "spans": [span_to_otlp(s) for s in spans],
        }],
    }]}


# Default head sampling ratio: 1 %. An edge gateway sees every request of the fleet; at 10k
# requests/s per worker 1 % is 100 spans/s, which one exporter thread and a collector absorb.
# OTel's SDK default is always_on (fine for a single service, too much at the edge); Jaeger's
# remote default is 0.001. Requests arriving with a sampled traceparent are traced anyway.
DEFAULT_SAMPLE_RATIO = 0.01
# The OTel resource attribute service.name; "edgeward" so spans are findable without setup.
DEFAULT_SERVICE_NAME = "edgeward"


# Exporter defaults are OpenTelemetry's BatchSpanProcessor defaults (OTEL_BSP_*): export batch
# 512, schedule delay 5 s, max queue 2048 spans.
DEFAULT_BATCH_SIZE = 512
DEFAULT_FLUSH_INTERVAL = 5.0
DEFAULT_MAX_QUEUE = 2048


@dataclass(frozen=True, kw_only=True)
class TracingConfig:
    """YAML `tracing:`. Without an OTLP endpoint (here or in OTEL_EXPORTER_OTLP_*), trace
    context is still propagated (ids in the access log and upstream headers) but no span is
    recorded. A key left out (null) takes the standard OTEL_* variable, then the default:
    a key that is set wins over the environment (`edgeward.observe.otel_env`)."""

    sample_ratio: float | None = field(default=None, metadata=doc(
        "fraction of new traces recorded; else OTEL_TRACES_SAMPLER(_ARG), else 1% "
        "(OTel default is 100%, Jaeger's 0.1%)"))
    parent_based: bool | None = field(default=None, metadata=doc(
        "follow the sampled flag of an incoming traceparent; else OTEL_TRACES_SAMPLER, "
        "else true (OTel ParentBased default)"))
    otlp_endpoint: str | None = field(default=None, metadata=doc(
        "OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318 (/v1/traces appended); "
        "else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT; else no spans"))
    service_name: str | None = field(default=None, metadata=doc(
        "service.name resource attribute; else OTEL_SERVICE_NAME, else service.name in "
        "OTEL_RESOURCE_ATTRIBUTES, else edgeward"))
    headers: dict[str, str] | None = field(default=None, metadata=doc(
        "fields sent with each export (an API key); else OTEL_EXPORTER_OTLP_(TRACES_)HEADERS"))
    compression: Literal["none", "gzip"] | None = field(default=None, metadata=doc(
        "gzip the export body; else OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION, else none "
        "(the OTel default)"))
    timeout: Duration | None = field(default=None, metadata=doc(
        "one export POST's timeout; else OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, else 10s "
        "(the OTel default)"))
    resource_attributes: dict[str, str] | None = field(default=None, metadata=doc(
        "resource attributes of exported spans, over those of OTEL_RESOURCE_ATTRIBUTES"))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=doc(
        "spans per POST; OTel BatchSpanProcessor default 512"))
    flush_interval: Duration = field(default=DEFAULT_FLUSH_INTERVAL, metadata=doc(
        "longest wait before a partial batch is sent; OTel default 5s"))
    max_queue: int = field(default=DEFAULT_MAX_QUEUE, metadata=doc(
        "spans waiting to be sent; more are dropped and counted; OTel default 2048"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.sample_ratio is not None and not 0.0 <= self.sample_ratio <= 1.0:
            problems.append(("sample_ratio", f"must be between 0 and 1, got {self.sample_ratio}"))
        if self.otlp_endpoint is not None:
            url = urllib.parse.urlsplit(self.otlp_endpoint)
            if url.scheme not in ("http", "https") or not url.hostname:
                problems.append(("otlp_endpoint",
                                 f"must be an http(s) URL, got {self.otlp_endpoint!r}"))
        if self.service_name is not None and not self.service_name:
            problems.append(("service_name", "must not be empty"))
        for name in self.headers or {}:
            if not name or any(c in name for c in " \t\r\n:"):
                problems.append((f"headers.{name}", "is not a valid field name"))
        if self.timeout is not None and self.timeout <= 0:
            problems.append(("timeout", f"must be > 0, got {self.timeout}"))
        if self.batch_size < 1:
            problems.append(("batch_size", f"must be >= 1, got {self.batch_size}"))
        if self.max_queue < self.batch_size:
            problems.append(("max_queue",
                             f"must be >= batch_size ({self.batch_size}), got {self.max_queue}"))
        if self.flush_interval <= 0:
            problems.append(("flush_interval", f"must be > 0, got {self.flush_interval}"))
        return problems


def unix_ns() -> int:
    """Wall clock in epoch nanoseconds, for the shell to stamp spans (the core never calls it)."""
    return time.time_ns()


__all__ = [
    "FLAG_SAMPLED", "Sampler", "SpanRecord", "TraceContext", "TracingConfig",
    "format_traceparent", "new_span_id", "new_trace_id", "otlp_request_body", "parse_traceparent",
    "parse_tracestate", "span_to_otlp", "unix_ns",
]
