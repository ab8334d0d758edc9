"""What a worker process exports about itself and watches: CPU, memory, open files, the build.

Open files. A gateway holds a descriptor per client connection, upstream connection, log
file and listener, and a distribution's default soft limit of 1024 caps it near 1,000
connections while the hard limit is often far higher. So the soft limit is raised to the hard
limit at start (`raise_open_files_limit`), as nginx's `worker_rlimit_nofile` does.

When every descriptor is in use, the event loop (libuv, under uvloop) cannot accept: it
accepts and closes the waiting connections at once with a spare descriptor it keeps for that,
without reporting each one. So the worker checks once a second whether its descriptors are
all in use: each such second counts in `edgeward_open_files_exhausted_seconds_total`, and a
warning is logged at most once per EXHAUSTED_WARN_EVERY seconds.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Final

from edgeward import __version__
from edgeward.observe.gateway_metrics import GatewayMetrics

log = logging.getLogger("edgeward.process")

# One warning a minute: enough to be seen in any log view, few enough never to flood it.
EXHAUSTED_WARN_EVERY: Final = 60.0
# Descriptors kept out of the automatic connection cap, at least: listeners, log files, the
# admin API, Redis/etcd clients, health probes, and upstream connections.
RESERVED_FDS: Final = 64


def auto_connection_cap(fd_limit: int) -> int:
    """The default `server.max_connections` for an open-file limit: the limit less an eighth
    of it (at least RESERVED_FDS) for upstream connections and the process's own files, and
    never below 16. Idle keep-alive clients, the many, hold no upstream connection."""
    return max(16, fd_limit - max(RESERVED_FDS, fd_limit // 8))


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (soft before, soft now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = _nr_open() or soft  # Linux refuses an infinite NOFILE; fs.nr_open is the cap
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def _nr_open() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_files() -> int | None:
    """Descriptors this process holds; None where /proc is not there. Listing the directory
    needs one descriptor itself: when none is left, that is the answer (all in use)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the directory's own
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return open_files_limit()
        return None


def resident_bytes() -> float:
    try:
        with open("/proc/self/statm") as f:
            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def compiled() -> bool:
    """Whether the data plane runs from the native build (edgeward._native)."""
    from edgeward.http import listener

    return not (listener.__file__ or "").endswith(".py")


class FdExhaustion:
    """Seconds spent with every descriptor in use, and when to warn (sans-I/O: the caller
    passes the counts and the monotonic time)."""

    def __init__(self, warn_every: float = EXHAUSTED_WARN_EVERY) -> None:
        self.warn_every = warn_every
        self.seconds = 0.0
        self._last_tick: float | None = None
        self._last_warning: float | None = None

    def tick(self, in_use: int, limit: int, now: float) -> bool:
        """Record one check; True when a warning is due."""
        last, self._last_tick = self._last_tick, now
        if in_use < limit:
            return False
        self.seconds += now - last if last is not None else 1.0
        if self._last_warning is not None and now - self._last_warning < self.warn_every:
            return False
        self._last_warning = now
        return True


class Refusals:
    """Client connections closed at accept because `server.max_connections` were open, and
    when to warn (sans-I/O: the caller passes the running total and the monotonic time)."""

    def __init__(self, warn_every: float = EXHAUSTED_WARN_EVERY) -> None:
        self.warn_every = warn_every
        self._warned_total = 0
        self._last_warning: float | None = None

    def tick(self, total: int, now: float) -> int:
        """How many were refused since the last warning, when a warning is due; else 0."""
        fresh = total - self._warned_total
        if fresh <= 0:
            return 0
        if self._last_warning is not None and now - self._last_warning < self.warn_every:
            return 0
        self._last_warning, self._warned_total = now, total
        return fresh


class ProcessWatch:
    """Binds the process_* families and edgeward_build_info; `tick(now)` once a second."""

    def __init__(self, metrics: GatewayMetrics,
                 refused: Callable[[], int] | None = None) -> None:
        self.exhaustion = FdExhaustion()
        self.refusals = Refusals()
        self.refused = refused  # client connections closed at accept, running total
        if refused is not None:
            metrics.refused_connections.set_function(lambda: float(refused()))
        metrics.process_cpu.set_function(cpu_seconds)
        metrics.process_memory.set_function(resident_bytes)
        metrics.process_open_fds.set_function(lambda: float(open_files() or 0))
        metrics.process_max_fds.set_function(lambda: float(open_files_limit()))
        metrics.process_start_time.set(time.time())
        metrics.fd_exhausted.set_function(lambda: self.exhaustion.seconds)
        metrics.build_info.labels(__version__, platform.python_version(),
                                  "true" if compiled() else "false").set(1.0)

    def tick(self, now: float) -> None:
        if self.refused is not None:
            fresh = self.refusals.tick(self.refused(), now)
            if fresh:
                log.warning(
                    "listener: %d client connection(s) closed as accepted since the last "
                    "warning: server.max_connections were open (raise it, add workers, or "
                    "see docs/troubleshooting.md)", fresh,
                    extra={"fields": {"event": "connections_refused", "count": fresh}})
        in_use = open_files()
        if in_use is None:
            return
        limit = open_files_limit()
        if self.exhaustion.tick(in_use, limit, now):
            log.warning(
                "open files: all %d descriptors in use; new client connections are closed "
                "as soon as they are accepted (raise LimitNOFILE / ulimit -n, or add "
                "workers; see docs/troubleshooting.md)", limit,
                extra={"fields": {"event": "open_files_exhausted", "limit": limit}})
