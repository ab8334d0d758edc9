"""Share metric snapshots between worker processes through files in one directory.

Workers share the listening port (SO_REUSEPORT), so a scrape of /metrics lands on any one of
them. Each worker writes its registry snapshot to `<directory>/worker-<id>.json` about once a
second, atomically (write a temp file, fsync-free `os.replace`), and the worker that is scraped
reads every other worker's file, adds its own LIVE registry, merges and renders. This is the
same idea as prometheus_client's multiprocess mode (one file per process, merged at scrape),
with plain JSON instead of mmap'd files: a scrape sees other workers' figures up to one write
interval old, and the hot path never touches the file.

Which figures a file contributes:
- Counters and histograms: ALWAYS, from every file, including those of dead or stale workers.
  A counter that drops when a worker dies would look like a reset to Prometheus, and `rate()`
  would then count the surviving total as a fresh increase (a spike). prometheus_client keeps
  dead processes' counters for the same reason.
- Gauges: only from fresh files (written within `stale_after`) of live PIDs. A dead worker has
  no active connections; its gauges must vanish.

A restarted worker that reuses a worker id first renames the previous owner's file to
`retired-<id>-<pid>.json` (see `start()`), so the old counts stay in the sum and the new
process starts from zero. Wipe the directory when the whole gateway (all workers) starts,
exactly as prometheus_client asks for its multiprocess directory.

The directory must be private: `private_directory()` makes a fresh one (mkdtemp: random name,
mode 0700), and `start()` refuses a directory that is a symlink, is owned by another user or
is writable by group or others. A scrape reads only regular files owned by this user, and a
file whose snapshot does not merge with this worker's (malformed, or a family of another type)
is skipped and counted in `read_errors`: one bad file never makes /metrics fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tempfile
import time
from typing import Any

from edgeward.observe.metrics import Registry, Snapshot, merge, render_snapshot

# Workers publish once a second: the scrape interval of Prometheus is usually 10-60 s, so a
# one-second lag is invisible, and a 2-10 KB JSON write per second costs nothing measurable.
DEFAULT_PUBLISH_INTERVAL = 1.0

# A worker file not rewritten for 5 s (five missed publishes) has its gauges ignored: the
# worker is gone or wedged. Same order as prometheus_client's "dead process" handling, which
# relies on the supervisor; we also check the PID.
DEFAULT_STALE_AFTER = 5.0

_LIVE_PREFIX = "worker-"
_RETIRED_PREFIX = "retired-"


def private_directory() -> str:
    """A new directory only this user can use: `edgeward-metrics-<pid>-<random>` under the
    temp dir, mode 0700 (mkdtemp). The pid says whose it is; the random part that nobody
    could have made it beforehand."""
    return tempfile.mkdtemp(prefix=f"edgeward-metrics-{os.getpid()}-")


def check_private(directory: str) -> None:
    """Raise PermissionError unless `directory` is a real directory of ours that nobody else
    can write to."""
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"metrics directory {directory} is not a directory (or is a "
                              "symlink)")
    if st.st_uid != os.geteuid():
        raise PermissionError(f"metrics directory {directory} is owned by uid {st.st_uid}, "
                              f"not {os.geteuid()}")
    if st.st_mode & 0o022:
        raise PermissionError(f"metrics directory {directory} is writable by others "
                              f"(mode {stat.S_IMODE(st.st_mode):04o})")


def _ours(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SnapshotExchange:
    """One worker's view of the shared snapshot directory."""

    __slots__ = ("directory", "worker_id", "stale_after", "pid", "_path", "read_errors")

    def __init__(self, directory: str, worker_id: str | int, *,
                 stale_after: float = DEFAULT_STALE_AFTER) -> None:
        if stale_after <= 0:
            raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
        text_id = str(worker_id)
        if not text_id or "/" in text_id or text_id.startswith("."):
            raise ValueError(f"worker_id must be a plain file-name part, got {worker_id!r}")
        self.directory = directory
        self.worker_id = text_id
        self.stale_after = stale_after
        self.pid = os.getpid()
        self._path = os.path.join(directory, f"{_LIVE_PREFIX}{text_id}.json")
        self.read_errors = 0

    def start(self) -> None:
        """Create the directory (0700) or check an existing one is private (PermissionError
        if not); retire a previous process's file for this worker id."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        check_private(self.directory)
        old = _read(self._path) if _ours(self._path) else None
        if old is not None and old.get("pid") != self.pid:
            retired = os.path.join(
                self.directory, f"{_RETIRED_PREFIX}{self.worker_id}-{old.get('pid')}.json")
            try:
                os.replace(self._path, retired)
            except FileNotFoundError:
                pass

    def publish(self, registry: Registry, wall_now: float | None = None) -> None:
        """Write this worker's snapshot atomically (temp file in the same dir, then rename)."""
        doc = {"pid": self.pid, "worker_id": self.worker_id,
               "written_at": time.time() if wall_now is None else wall_now,
               "snapshot": registry.snapshot()}
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, self._path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def collect(self, registry: Registry, wall_now: float | None = None) -> Snapshot:
        """Merge every other worker's file with this worker's live registry."""
        now = time.time() if wall_now is None else wall_now
        own = registry.snapshot()
        snaps: list[Snapshot] = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            names = []
        for name in names:
            if not name.endswith(".json") or name.startswith(".tmp-"):
                continue
            path = os.path.join(self.directory, name)
            if path == self._path:
                continue
            snap = self._usable(path, now, snaps, own) if _ours(path) else None
            if snap is None:
                self.read_errors += 1
                continue
            snaps.append(snap)
        snaps.append(own)
        return merge(snaps)

    def _usable(self, path: str, now: float, accepted: list[Snapshot],
                own: Snapshot) -> Snapshot | None:
        """The file's snapshot (without gauges unless fresh and live), or None when it cannot
        be read or does not merge and render with those accepted so far and our own."""
        try:
            doc = _read(path)
            if doc is None:
                return None
            snap: Snapshot = doc["snapshot"]
            live = (os.path.basename(path).startswith(_LIVE_PREFIX)
                    and now - float(doc.get("written_at", 0.0)) <= self.stale_after
                    and pid_alive(int(doc.get("pid", 0))))
            if not live:
                snap = _without_gauges(snap)
            render_snapshot(merge([*accepted, snap, own]))
        except Exception:  # a malformed or foreign file: skip it, counted by the caller
            return None
        return snap

    def render(self, registry: Registry, wall_now: float | None = None,
               openmetrics: bool = False) -> str:
        """The /metrics body for the whole fleet of workers on this host."""
        return render_snapshot(self.collect(registry, wall_now), openmetrics)


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("snapshot"), dict):
        return None
    return doc


def _without_gauges(snap: Snapshot) -> Snapshot:
    return {**snap, "families": [
        f if f["type"] != "gauge" else {**f, "samples": []} for f in snap["families"]]}


async def publish_forever(exchange: SnapshotExchange, registry: Registry,
                          interval: float = DEFAULT_PUBLISH_INTERVAL) -> None:
    """Run as a task on the worker's loop: publish, sleep `interval`, repeat until cancelled.
    A failed write (disk full) is retried on the next tick; the last good file stays."""
    exchange.start()
    while True:
        try:
            exchange.publish(registry)
        except OSError:
            pass
        await asyncio.sleep(interval)
