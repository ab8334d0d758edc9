"""The OTLP/HTTP span exporter: batches from a background thread, custom headers, gzip, and
retries of throttled or unavailable collectors with backoff.

`export(span)` is called on the event loop: it appends to a bounded deque (no lock; the GIL
makes append and len atomic) or, when the queue is full, drops the span and counts it; it
never blocks. The thread wakes every `flush_interval` or as soon as a batch is full, and
POSTs OTLP/JSON to the traces URL.

Retries follow the OTLP/HTTP specification ("Retryable Response Codes"): 429, 502, 503 and
504 are retried, honouring `Retry-After` (seconds or an HTTP date) when the collector sends
it, else after an exponential backoff with jitter; any other answer, and a connection that
cannot be made, ends the batch at once (a collector that is down would otherwise hold the
thread while the queue fills). The policy is bounded: `RetryPolicy` caps the attempts, each
wait and the total time, with OpenTelemetry Java's defaults (5 attempts, 1 s initial backoff,
multiplier 1.5, 5 s longest backoff). A batch that is not accepted is dropped and counted:
spans are diagnostics, and a retry queue would grow without bound while a collector is down.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import random
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from edgeward.observe.tracing import SpanRecord, otlp_request_body

# Exporter defaults are OpenTelemetry's BatchSpanProcessor defaults (OTEL_BSP_*):
# max queue 2048 spans, export batch 512, schedule delay 5 s.
DEFAULT_MAX_QUEUE = 2048
DEFAULT_BATCH_SIZE = 512
DEFAULT_FLUSH_INTERVAL = 5.0
# OTEL_EXPORTER_OTLP_TIMEOUT's default: 10 s for one POST.
DEFAULT_EXPORT_TIMEOUT = 10.0
# Statuses a collector answers when it may accept the same batch later (OTLP/HTTP spec).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

Compression = Literal["none", "gzip"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often, and how long, a batch is retried (OpenTelemetry Java's RetryPolicy
    defaults). `max_elapsed` bounds one batch's retries whatever the collector says."""

    max_attempts: int = 5
    initial_backoff: float = 1.0
    multiplier: float = 1.5
    max_backoff: float = 5.0
    max_retry_after: float = 30.0  # a longer Retry-After is cut to this
    max_elapsed: float = 60.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number `retry` (1-based): exponential, capped, with full
        jitter between half and all of it."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (0.5 + rng.random() / 2)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` value asks to wait (delta-seconds or an HTTP date, RFC 9110
    section 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def traces_url(endpoint: str, exact: bool) -> urllib.parse.SplitResult:
    """The URL spans are POSTed to: `endpoint` itself when `exact` (a signal-specific
    endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), else the base endpoint with /v1/traces
    appended unless it ends so (OTEL_EXPORTER_OTLP_ENDPOINT, `tracing.otlp_endpoint`)."""
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"otlp_endpoint must be an http(s) URL, got {endpoint!r}")
    if not exact:
        base = url.path.rstrip("/")
        url = url._replace(path=base if base.endswith("/v1/traces") else base + "/v1/traces")
    elif not url.path:
        url = url._replace(path="/")
    return url


class OtlpHttpExporter:
    """Ships finished spans to an OTLP/HTTP collector from a background thread."""

    def __init__(self, endpoint: str, service_name: str = "edgeward", *,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 max_queue: int = DEFAULT_MAX_QUEUE,
                 timeout: float = DEFAULT_EXPORT_TIMEOUT,
                 headers: Mapping[str, str] | None = None,
                 compression: Compression = "none",
                 resource: Mapping[str, str] | None = None,
                 exact_path: bool = False,
                 retry: RetryPolicy | None = None) -> None:
        url = traces_url(endpoint, exact_path)
        if batch_size < 1 or max_queue < batch_size:
            raise ValueError(
                f"need 1 <= batch_size <= max_queue, got batch_size={batch_size}, "
                f"max_queue={max_queue}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be > 0, got {flush_interval!r}")
        self.scheme = url.scheme
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.path = url.path + (f"?{url.query}" if url.query else "")
        self.service_name = service_name
        self.resource = dict(resource or {})
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.compression: Compression = compression
        if compression == "gzip":
            self.headers["Content-Encoding"] = "gzip"
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.dropped = 0
        self.exported = 0
        self.failed_exports = 0
        self.retries = 0
        self._rng = random.Random()
        self._queue: deque[SpanRecord] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()  # interrupts a backoff wait
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgeward-otlp", daemon=True)
            self._thread.start()

    def export(self, span: SpanRecord) -> bool:
        """Queue one span; False (and counted in `dropped`) if the queue is full."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return False
        queue.append(span)
        if len(queue) == self.batch_size:
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask the thread to send everything queued now; True once the queue was drained."""
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while self._queue:
                batch: list[SpanRecord] = []
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                self._send(batch)
            self._idle.set()
            if self._stop.is_set():
                return

    def body(self, batch: list[SpanRecord]) -> bytes:
        """The request body for `batch`: OTLP/JSON, gzipped when so configured."""
        doc = otlp_request_body(batch, self.service_name, self.resource)
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return gzip.compress(raw, compresslevel=6) if self.compression == "gzip" else raw

    def _send(self, batch: list[SpanRecord]) -> None:
        body = self.body(batch)
        policy = self.retry
        started = time.monotonic()
        ok = False
        for attempt in range(1, policy.max_attempts + 1):
            status, wait_hint = self._post(body)
            ok = status is not None and 200 <= status < 300
            if ok or status not in RETRYABLE_STATUSES or attempt == policy.max_attempts:
                break
            wait = (min(wait_hint, policy.max_retry_after) if wait_hint is not None
                    else policy.backoff(attempt, self._rng))
            if time.monotonic() - started + wait > policy.max_elapsed:
                break
            self.retries += 1
            if self._stop.wait(wait):
                break  # shutting down: do not hold the process for a collector
        if ok:
            self.exported += len(batch)
        else:
            self.failed_exports += 1
            self.dropped += len(batch)

    def _post(self, body: bytes) -> tuple[int | None, float | None]:
        """One POST: (status, Retry-After seconds), or (None, None) when no answer came."""
        conn_cls = (http.client.HTTPSConnection if self.scheme == "https"
                    else http.client.HTTPConnection)
        conn = conn_cls(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", self.path, body, self.headers)
            response = conn.getresponse()
            response.read()
            return response.status, retry_after(response.getheader("retry-after"), time.time())
        except (OSError, http.client.HTTPException):
            return None, None
        finally:
            conn.close()


__all__ = ["OtlpHttpExporter", "RetryPolicy", "retry_after", "traces_url"]
