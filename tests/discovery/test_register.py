from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from tests.fixtures_etcd import (  # noqa: F401 - fixtures
    EtcdServer,
    etcd_fixture,
    etcd_private_fixture,
    free_port,
)

from edgeward.discovery.etcd import (
    EtcdRegistryWatcher,
    EtcdUnavailable,
    Member,
    parse_registry_value,
)
from edgeward.discovery.register import DEFAULT_TTL, Registration, main

PREFIX = "/edgeward/services/"


def wait(pred: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


async def until(pred: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Registrant:
    """`python -m edgeward.discovery.register ...` as a child process, signalled by PID."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeward.discovery.register", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def registrants() -> Iterator[list[Registrant]]:
    started: list[Registrant] = []
    yield started
    for r in started:
        r.stop()


def test_defaults_and_argument_errors() -> None:
    assert DEFAULT_TTL == 10.0
    with pytest.raises(ValueError, match="weight"):
        Registration([("127.0.0.1", 2379)], "svc", ("10.0.0.1", 80), weight=0)
    with pytest.raises(ValueError, match="ttl"):
        Registration([("127.0.0.1", 2379)], "svc", ("10.0.0.1", 80), ttl=0.5)
    with pytest.raises(ValueError, match="service"):
        Registration([("127.0.0.1", 2379)], "a/b", ("10.0.0.1", 80))
    assert main(["--service", "x"]) == 2
    assert main(["--etcd", "127.0.0.1:2379", "--service", "x", "--address", "nope"]) == 2


def test_cli_exits_1_naming_etcd_when_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = main(["--etcd", f"127.0.0.1:{port}", "--service", "x", "--address", "10.0.0.1:80",
                 "--timeout", "1s"])
    assert code == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


async def test_registration_puts_json_under_lease_and_close_removes_it(etcd: EtcdServer) -> None:
    key = PREFIX + "api/10.0.0.5:8080"
    async with Registration([etcd.endpoint], "api", ("10.0.0.5", 8080), weight=3, ttl=5) as reg:
        assert etcd.keys(PREFIX + "api/") == [key]
        value = json.loads(etcd.etcdctl("get", key, "--print-value-only"))
        assert value == {"address": "10.0.0.5:8080", "weight": 3}
        assert reg.lease_id is not None
        ttl_info = etcd.etcdctl("lease", "timetolive", format(reg.lease_id, "x"))
        assert "granted with TTL(5s)" in ttl_info
    assert etcd.keys(PREFIX + "api/") == []


async def test_keepalive_holds_the_key_beyond_its_ttl(etcd: EtcdServer) -> None:
    async with Registration([etcd.endpoint], "held", ("10.0.0.6", 80), ttl=2):
        await asyncio.sleep(3.0)  # 1.5 TTLs: without refreshes the key would be gone
        assert etcd.keys(PREFIX + "held/") == [PREFIX + "held/10.0.0.6:80"]


async def test_lost_lease_is_registered_again(etcd: EtcdServer) -> None:
    async with Registration([etcd.endpoint], "again", ("10.0.0.7", 80), ttl=3) as reg:
        assert reg.lease_id is not None
        # what an etcd that forgot the lease looks like to the registrant
        etcd.etcdctl("lease", "revoke", format(reg.lease_id, "x"))
        assert etcd.keys(PREFIX + "again/") == []
        # The key comes back on the next keep-alive (TTL/3); the counter is bumped just after
        # the put, so wait for both rather than reading it the instant the key reappears.
        await until(lambda: bool(etcd.keys(PREFIX + "again/")) and reg.registrations == 2,
                    timeout=4.0)
        assert reg.registrations == 2


async def test_registration_survives_etcd_restart(etcd_private: EtcdServer) -> None:
    server = etcd_private
    async with Registration([server.endpoint], "rs", ("10.0.0.8", 80), ttl=2, timeout=1.0):
        server.stop()
        await asyncio.sleep(1.0)
        server.start()
        await asyncio.sleep(3.0)  # longer than the TTL: refreshes must have resumed
        assert server.keys(PREFIX + "rs/") == [PREFIX + "rs/10.0.0.8:80"]


def test_sigkilled_registrant_vanishes_after_ttl_and_sigterm_is_immediate(
    etcd: EtcdServer, registrants: list[Registrant]
) -> None:
    base = ["--etcd", etcd.url, "--service", "web", "--ttl", "2s"]
    killed = Registrant(*base, "--address", "10.0.1.1:80")
    termed = Registrant(*base, "--address", "10.0.1.2:80", "--weight", "4")
    registrants += [killed, termed]
    wait(lambda: len(etcd.keys(PREFIX + "web/")) == 2, timeout=10)

    termed.signal(signal.SIGTERM)
    took = wait(lambda: etcd.keys(PREFIX + "web/") == [PREFIX + "web/10.0.1.1:80"], timeout=2)
    assert took < 1.0  # revoked, not expired
    assert termed.wait() == 0

    killed.signal(signal.SIGKILL)
    killed.wait()
    time.sleep(0.5)
    assert etcd.keys(PREFIX + "web/") == [PREFIX + "web/10.0.1.1:80"]  # lease still running
    wait(lambda: etcd.keys(PREFIX + "web/") == [], timeout=4)  # ttl 2s (+ etcd's rounding)


async def test_watcher_sees_registrants_come_and_go(
    etcd: EtcdServer, registrants: list[Registrant]
) -> None:
    updates: list[list[tuple[str, int, int]]] = []
    async with EtcdRegistryWatcher([etcd.endpoint], "shop", updates.append):
        assert updates == [[]]
        r = Registrant("--etcd", etcd.url, "--service", "shop", "--address", "10.0.2.1:81",
                       "--weight", "2", "--ttl", "3s")
        registrants.append(r)
        await until(lambda: updates[-1] == [("10.0.2.1", 81, 2)], timeout=10)
        r.signal(signal.SIGINT)
        await until(lambda: updates[-1] == [], timeout=2)
        assert r.wait() == 0


def test_registration_errors_are_connection_errors() -> None:
    async def run() -> None:
        async with Registration([("127.0.0.1", free_port())], "x", ("10.0.0.1", 80),
                                timeout=1.0):
            pass

    with pytest.raises(EtcdUnavailable):
        asyncio.run(run())


async def test_zone_and_labels_round_trip_through_the_registry(
    etcd: EtcdServer, registrants: list[Registrant]
) -> None:
    updates: list[list[Member]] = []
    async with EtcdRegistryWatcher([etcd.endpoint], "edge", updates.append):
        r = Registrant("--etcd", etcd.url, "--service", "edge", "--address", "10.0.3.1:82",
                       "--zone", "eu-1b", "--label", "class=iot", "--label", "sla=gold")
        registrants.append(r)
        await until(lambda: bool(updates[-1]), timeout=10)
        assert updates[-1] == [("10.0.3.1", 82, 1, "eu-1b", {"class": "iot", "sla": "gold"})]
        r.signal(signal.SIGTERM)
        assert r.wait() == 0


def test_registry_locality_is_checked() -> None:
    good = b'{"address": "10.0.0.1:80", "zone": "a", "labels": {"k": "v"}}'
    assert parse_registry_value(b"k", good) == ("10.0.0.1", 80, 1, "a", {"k": "v"})
    assert parse_registry_value(b"k", b'{"address": "10.0.0.1:80", "zone": 3}') is None
    assert parse_registry_value(b"k", b'{"address": "10.0.0.1:80", "labels": {"k": 1}}') is None
    assert main(["--etcd", "127.0.0.1:1", "--service", "s", "--address", "10.0.0.1:80",
                 "--label", "novalue"]) == 2
