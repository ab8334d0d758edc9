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

from edgeward.observe.process import FdExhaustion, open_files, raise_open_files_limit


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
        "server: {header_timeout: 2m}\n"
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
