"""SnapshotExchange across real worker processes sharing one directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.observe.exchange import SnapshotExchange
from edgeward.observe.metrics import Registry

sys.path.insert(0, os.path.dirname(__file__))
from promtext import parse_exposition  # noqa: E402

WORKER = r"""
import sys, time
from edgeward.observe.exchange import SnapshotExchange
from edgeward.observe.metrics import Registry
directory, worker_id, requests, active, loop = sys.argv[1:6]
reg = Registry()
reg.counter("req_total", "r", ["route"]).labels("orders").inc(float(requests))
reg.gauge("active_connections", "a").labels().set(float(active))
reg.histogram("d_seconds", "d", buckets=[0.1, 1.0]).labels().observe(0.5)
ex = SnapshotExchange(directory, worker_id)
ex.start()
ex.publish(reg)
print("ready", flush=True)
while True:
    if loop == "busy":
        ex.publish(reg)
    else:
        time.sleep(0.05)
"""


def _own_registry() -> Registry:
    reg = Registry()
    reg.counter("req_total", "r", ["route"]).labels("orders").inc(1)
    reg.gauge("active_connections", "a").labels().set(1)
    reg.histogram("d_seconds", "d", buckets=[0.1, 1.0]).labels().observe(0.05)
    return reg


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(worker_id: str, requests: int, active: int, loop: str = "idle") -> (
            subprocess.Popen[str]):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), worker_id, str(requests), str(active),
             loop], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(5)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_exposition(text)[2]


def test_scrape_merges_two_other_workers_with_the_live_registry(tmp_path: Path,
                                                                 spawn: object) -> None:
    spawn("1", 10, 3)  # type: ignore[operator]
    spawn("2", 20, 4)  # type: ignore[operator]
    ex = SnapshotExchange(str(tmp_path), "0")
    ex.start()
    samples = _samples(ex.render(_own_registry()))
    assert samples[("req_total", (("route", "orders"),))] == 31
    assert samples[("active_connections", ())] == 8
    assert samples[("d_seconds_bucket", (("le", "0.1"),))] == 1
    assert samples[("d_seconds_bucket", (("le", "1.0"),))] == 3
    assert samples[("d_seconds_count", ())] == 3


def test_dead_worker_keeps_its_counters_but_loses_its_gauges(tmp_path: Path,
                                                             spawn: object) -> None:
    spawn("1", 10, 3)  # type: ignore[operator]
    doomed = spawn("2", 20, 4)  # type: ignore[operator]
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(5)
    ex = SnapshotExchange(str(tmp_path), "0")
    samples = _samples(ex.render(_own_registry()))
    assert samples[("req_total", (("route", "orders"),))] == 31  # never goes backwards
    assert samples[("active_connections", ())] == 4  # 3 + own 1; the dead worker's 4 is gone
    assert samples[("d_seconds_count", ())] == 3


def test_stale_file_of_a_live_pid_loses_its_gauges(tmp_path: Path, spawn: object) -> None:
    spawn("1", 10, 3)  # type: ignore[operator]
    ex = SnapshotExchange(str(tmp_path), "0", stale_after=5.0)
    later = time.time() + 60
    samples = _samples(ex.render(_own_registry(), wall_now=later))
    assert samples[("active_connections", ())] == 1
    assert samples[("req_total", (("route", "orders"),))] == 11


def test_restarted_worker_retires_the_old_file_so_totals_stay_monotonic(
        tmp_path: Path, spawn: object) -> None:
    first = spawn("1", 10, 3)  # type: ignore[operator]
    os.kill(first.pid, signal.SIGKILL)
    first.wait(5)
    spawn("1", 2, 5)  # type: ignore[operator]  # same worker id, new process, counts from 0
    names = sorted(os.listdir(tmp_path))
    assert names == [f"retired-1-{first.pid}.json", "worker-1.json"]
    ex = SnapshotExchange(str(tmp_path), "0")
    samples = _samples(ex.render(_own_registry()))
    assert samples[("req_total", (("route", "orders"),))] == 13
    assert samples[("active_connections", ())] == 6


def test_reader_never_sees_a_torn_file_while_a_worker_rewrites_it(tmp_path: Path,
                                                                  spawn: object) -> None:
    spawn("1", 10, 3, "busy")  # type: ignore[operator]
    ex = SnapshotExchange(str(tmp_path), "0")
    own = _own_registry()
    for _ in range(200):
        samples = _samples(ex.render(own))
        assert samples[("req_total", (("route", "orders"),))] == 11
    assert ex.read_errors == 0


def test_worker_id_must_be_a_file_name_part(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker_id"):
        SnapshotExchange(str(tmp_path), "../x")


def test_start_refuses_a_directory_others_can_write_or_a_symlink(tmp_path: Path) -> None:
    from edgeward.observe.exchange import check_private, private_directory

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(PermissionError, match="writable by others"):
        SnapshotExchange(str(open_dir), 0).start()
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(PermissionError, match="not a directory"):
        check_private(str(link))
    fresh = private_directory()
    try:
        assert os.stat(fresh).st_mode & 0o777 == 0o700
        assert os.path.basename(fresh).startswith(f"edgeward-metrics-{os.getpid()}-")
        SnapshotExchange(fresh, 0).start()
    finally:
        os.rmdir(fresh)


def test_a_planted_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    ex = SnapshotExchange(str(tmp_path), "a")
    ex.start()
    (tmp_path / "worker-z.json").write_text('{"snapshot": {"version": 1, "families": 7}}')
    text = ex.render(_own_registry())
    assert "req_total" in text and ex.read_errors == 1
