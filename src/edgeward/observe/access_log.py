"""Access log: one JSON line per request, written by a background thread.

The event loop only appends the request's record (a dict it no longer touches) to a bounded
deque: no formatting, no syscall, no lock. A writer thread serialises and writes lines in
batches. When the queue is full the record is dropped and counted (`dropped`). nginx instead
blocks its worker on a slow disk; at the edge we prefer losing log lines to stalling requests,
and the loss is visible in edgeward_access_log_dropped_total.

`reopen()` (call it from the SIGHUP handler) makes the writer close and reopen the path
before its next write, so `logrotate` can rename the file and signal us (nginx USR1 does the
same). Lines already queued go to the new file.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from edgeward.values import Duration, doc

# The fields of a line, in this order; a record's missing fields are written as null and
# extra keys are appended after them.
FIELDS: tuple[str, ...] = (
    "time", "request_id", "trace_id", "client", "method", "host", "path", "status", "route",
    "upstream", "endpoint", "bytes_in", "bytes_out", "duration", "upstream_connect",
    "upstream_response", "retries", "error_code", "consumer",
)

# 8192 queued lines: at 20k requests/s that is 0.4 s of lines, enough to ride out a slow
# write; ~8192 small dicts is a few MB at most. (nginx's `buffer=` defaults to 64k bytes.)
DEFAULT_MAX_QUEUE = 8192
# The writer wakes at least every 200 ms: lines appear in `tail -f` promptly while batching
# hundreds of lines per write at load (nginx's `flush=` is user-set; Envoy flushes each 1 s).
DEFAULT_FLUSH_INTERVAL = 0.2


@dataclass(frozen=True, kw_only=True)
class AccessLogConfig:
    """YAML `access_log:`. Off by default (no `path`), as in Envoy; nginx logs by default, but
    at the edge the log volume is a choice to make, not a surprise."""

    path: str | None = field(default=None, metadata=doc(
        'file to append to, or "stdout"; null disables the access log'))
    format: Literal["json"] = field(default="json", metadata=doc(
        "one JSON object per line (the only format for now)"))
    max_queue: int = field(default=DEFAULT_MAX_QUEUE, metadata=doc(
        "lines waiting for the writer thread; beyond it lines are dropped and counted"))
    flush_interval: Duration = field(default=DEFAULT_FLUSH_INTERVAL, metadata=doc(
        "longest a line waits before it is written"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.path is not None and not self.path:
            problems.append(("path", 'must be a file path or "stdout", got an empty string'))
        if self.max_queue < 1:
            problems.append(("max_queue", f"must be >= 1, got {self.max_queue}"))
        if self.flush_interval <= 0:
            problems.append(("flush_interval", f"must be > 0, got {self.flush_interval}"))
        return problems


_second_text: tuple[int, str] = (-1, "")


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z (the seconds part is
    formatted once per second)."""
    global _second_text
    whole, millis = divmod(round(epoch * 1000), 1000)
    second, text = _second_text
    if whole != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second_text = (whole, text)
    return f"{text}.{millis:03d}Z"


def format_line(record: dict[str, Any]) -> str:
    """The JSON line for one record (without the newline). A float `time` (epoch seconds)
    becomes RFC 3339 text; values that are not JSON types are written with str()."""
    ordered: dict[str, Any] = {}
    for name in FIELDS:
        ordered[name] = record.get(name)
    for name, value in record.items():
        if name not in ordered:
            ordered[name] = value
    stamp = ordered["time"]
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        ordered["time"] = format_time(float(stamp))
    return json.dumps(ordered, separators=(",", ":"), default=str, ensure_ascii=False)


class AccessLog:
    """`log(record)` on the loop; a thread writes. `start()`, `reopen()`, `close()`."""

    def __init__(self, config: AccessLogConfig) -> None:
        if config.path is None:
            raise ValueError("access_log.path is not set: the access log is disabled")
        self.path = config.path
        self.max_queue = config.max_queue
        self.flush_interval = config.flush_interval
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self._queue: deque[dict[str, Any] | str] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._reopen = False
        self._stopping = False
        self._file: IO[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgeward-access-log",
                                            daemon=True)
            self._thread.start()

    def log(self, record: dict[str, Any] | str) -> bool:
        """Queue one request's record (a dict, or a line already formatted on the caller's
        thread); False (and counted in `dropped`) if the queue is full. The caller must not
        modify a dict afterwards."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return False
        queue.append(record)
        return True

    def reopen(self) -> None:
        """Reopen the file before the next write (after logrotate renamed it)."""
        self._reopen = True
        self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; True if that happened in time."""
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stop the thread, close the file."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _open(self) -> IO[str]:
        if self.path == "stdout":
            return sys.stdout
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)

    def _close_file(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            try:
                self._file.close()
            except OSError:
                self.write_errors += 1
        self._file = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._reopen:
                self._reopen = False
                self._close_file()
            self._drain()
            self._idle.set()
            if self._stopping:
                self._close_file()
                return

    def _drain(self) -> None:
        queue = self._queue
        if not queue:
            return
        lines: list[str] = []
        while queue:
            item = queue.popleft()
            lines.append(item if isinstance(item, str) else format_line(item))
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
            self.written += len(lines)
        except OSError:
            # Disk full, directory gone: lose these lines, count them, and try a fresh open
            # next time rather than writing into a dead descriptor forever.
            self.write_errors += 1
            self.dropped += len(lines)
            self._close_file()
