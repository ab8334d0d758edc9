"""observe/process.py: the open-file limit raised at start, descriptor exhaustion seen and
counted (unit, injected time), and a real worker run out of descriptors."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.observability.obskit import get, wait_until
from tests.observe.promtext import parse_exposition
from tests.support.gateway import edgeward_command, free_port, port_accepts

from edgeward.observe.process import (
    FdExhaustion,
    Refusals,
    auto_connection_cap,
    open_files,
    raise_open_files_limit,
)


def test_exhaustion_counts_seconds_at_the_limit_and_warns_once_a_minute() -> None:
    fd = FdExhaustion(warn_every=60.0)
    assert fd.tick(100, 1024, now=10.0) is False
    assert fd.tick(1024, 1024, now=11.0) is True       # first second at the limit: warn
    assert fd.tick(1024, 1024, now=12.0) is False      # counted, not warned again
    assert fd.seconds == 2.0
    assert fd.tick(500, 1024, now=13.0) is False
    assert fd.tick(1024, 1024, now=70.0) is False      # 59 s after the last warning
    assert fd.tick(1024, 1024, now=71.5) is True
    assert fd.seconds == 2.0 + 57.0 + 1.5


def test_the_first_tick_at_the_limit_counts_one_second() -> None:
    fd = FdExhaustion()
    assert fd.tick(8, 8, now=5.0) is True
    assert fd.seconds == 1.0


@pytest.fixture
def lowered_soft_limit() -> Iterator[tuple[int, int]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip("needs a finite hard limit of 512 or more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        yield 256, hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_limit(lowered_soft_limit: tuple[int, int]) -> None:
    low, hard = lowered_soft_limit
    assert raise_open_files_limit() == (low, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    assert raise_open_files_limit() == (hard, hard)  # already there: nothing to do


def test_open_files_counts_this_process() -> None:
    before = open_files()
    assert before is not None
    r, w = os.pipe()
    try:
        assert open_files() == before + 2
    finally:
        os.close(r)
        os.close(w)


LIMIT = 48


def test_a_worker_out_of_descriptors_warns_counts_and_recovers() -> None:
    port, admin = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="edgeward-e2e-"))
    (workdir / "gw.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\n"
        # Idle clients hold their descriptors until the check has seen them all in use,
        # however busy the machine is.
        "server: {header_timeout: 2m, max_connections: 0}\n"
        "upstreams: {o: {targets: ['127.0.0.1:9']}}\n"
        "routes:\n  - {match: {path_prefix: /}, upstream: o}\n")
    stderr = workdir / "stderr.log"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            ["prlimit", f"--nofile={LIMIT}:{LIMIT}", *edgeward_command(), "run", "-c",
             str(workdir / "gw.yaml")], stderr=err, stdout=subprocess.DEVNULL,
            env={**os.environ, "EDGEWARD_LOG_LEVEL": "warning"})
    clients: list[socket.socket] = []
    try:
        wait_until(lambda: port_accepts(port), what="the gateway listening")
        for _ in range(LIMIT + 10):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        wait_until(lambda: "descriptors in use" in stderr.read_text(), timeout=60,
                   what="the warning")
        for c in clients:
            c.close()
        clients.clear()
        reply = wait_until(lambda: get(admin, "/metrics"), what="the admin API again")
        _, _, samples = parse_exposition(reply.body.decode())
        assert samples[("edgeward_open_files_exhausted_seconds_total", ())] >= 1
        assert samples[("process_max_fds", ())] == LIMIT
        lines = [line for line in stderr.read_text().splitlines() if "descriptors" in line]
        assert len(lines) == 1, lines  # rate-limited: one warning a minute
        assert f"all {LIMIT} descriptors in use" in lines[0]
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        assert proc.wait(10) == 0
    assert "Traceback" not in stderr.read_text()


def test_the_default_connection_cap_leaves_room_for_upstreams_and_the_process() -> None:
    assert auto_connection_cap(1024) == 896
    assert auto_connection_cap(256) == 192
    assert auto_connection_cap(1_048_576) == 917_504
    assert auto_connection_cap(48) == 16  # never below 16


def test_refusals_are_warned_at_most_once_a_minute_with_what_came_since() -> None:
    r = Refusals()
    assert r.tick(0, 0.0) == 0
    assert r.tick(3, 1.0) == 3
    assert r.tick(5, 2.0) == 0       # within the minute: counted, not warned
    assert r.tick(5, 61.5) == 2      # the two since the last warning
    assert r.tick(5, 200.0) == 0     # nothing new


def test_connections_over_the_cap_are_closed_counted_and_warned() -> None:
    port, admin = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="edgeward-e2e-"))
    (workdir / "gw.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\n"
        "server: {max_connections: 2, header_timeout: 2m}\n"
        "upstreams: {o: {targets: ['127.0.0.1:9']}}\n"
        "routes:\n  - {match: {path_prefix: /}, upstream: o}\n")
    stderr = workdir / "stderr.log"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([*edgeward_command(), "run", "-c", str(workdir / "gw.yaml")],
                                stderr=err, stdout=subprocess.DEVNULL,
                                env={**os.environ, "EDGEWARD_LOG_LEVEL": "warning"})
    held: list[socket.socket] = []
    try:
        wait_until(lambda: port_accepts(port), what="the gateway listening")
        # port_accepts opened and closed one connection: wait until the gateway let it go.
        wait_until(lambda: _open_clients(admin) == 0, what="the probe's connection gone")
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        wait_until(lambda: _open_clients(admin) == 2, what="two clients open")
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            assert extra.recv(1) == b""  # closed at once, before any byte
        except ConnectionResetError:
            pass  # or reset: either way never served
        finally:
            extra.close()
        reply = wait_until(lambda: _metric(admin, "edgeward_refused_connections_total") or None,
                           what="the refusal counted")
        assert reply == 1
        wait_until(lambda: "closed as accepted" in stderr.read_text(), what="the warning")
    finally:
        for c in held:
            c.close()
        proc.terminate()
        assert proc.wait(10) == 0
    assert "Traceback" not in stderr.read_text()


def _metric(admin: int, name: str) -> float:
    reply = get(admin, "/metrics")
    _, _, samples = parse_exposition(reply.body.decode())
    return samples.get((name, ()), 0.0)


def _open_clients(admin: int) -> float:
    return _metric(admin, "edgeward_active_connections")
