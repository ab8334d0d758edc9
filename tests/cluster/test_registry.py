"""Service registry end to end: `edgeward register` processes for two real origins in a real
etcd, a gateway whose upstream follows `discovery: {etcd: orders}` with active health checks.
Traffic reaches both; a SIGKILLed registrant leaves after its lease TTL; a SIGTERMed one
leaves at once; with nobody left the gateway answers 503 no_healthy_upstream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from tests.cluster._cluster import get_json, http_get, wait_admin, wait_until
from tests.fixtures_etcd import EtcdServer, etcd_private_fixture
from tests.support.gateway import GatewayProcess, edgeward_command, free_port
from tests.support.origin import Origin

__all__ = ["etcd_private_fixture"]

TTL = 2.0
PREFIX = "/edgeward/services/orders/"


class Registrant:
    """`edgeward register` for one origin, until stopped by PID."""

    def __init__(self, etcd: EtcdServer, address: str) -> None:
        self.address = address
        self.proc = subprocess.Popen(
            edgeward_command() + ["register", "--etcd", etcd.url, "--service", "orders",
                                  "--address", address, "--ttl", f"{TTL:g}s"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert line.startswith("registered "), line

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)


@pytest.fixture
def cluster(etcd_private: EtcdServer
            ) -> Iterator[tuple[EtcdServer, list[Origin], list[Registrant], GatewayProcess, int]]:
    origins = [Origin().start(), Origin().start()]
    registrants = [Registrant(etcd_private, o.address) for o in origins]
    admin = free_port()
    text = ("listen: {listen}\n"
            f"admin: 127.0.0.1:{admin}\n"
            f"etcd: {{endpoints: ['{etcd_private.url}'], timeout: 2s}}\n"
            "upstreams:\n  orders:\n    discovery: {etcd: orders}\n"
            "    health: {path: /healthz, interval: 200ms, timeout: 200ms, "
            "unhealthy_after: 2, healthy_after: 1}\n"
            "routes:\n  - {name: orders, match: {path_prefix: /}, upstream: orders}\n")
    gw = GatewayProcess.config(text)
    try:
        gw.start()
        wait_admin(admin)
        yield etcd_private, origins, registrants, gw, admin
    finally:
        gw.stop()
        for r in registrants:
            r.stop()
        for o in origins:
            o.stop()


def endpoints(admin: int) -> dict[str, bool]:
    ups = get_json(admin, "/upstreams")
    assert isinstance(ups, list)
    return {e["address"]: e["healthy"] for u in ups for e in u["endpoints"]}


def spread(port: int, origins: list[Origin], n: int = 40) -> Counter[str]:
    """Send n requests; which origin answered each (all must be 200)."""
    marks = [o.mark() for o in origins]
    for _ in range(n):
        code, body = http_get(port, "/work")
        assert code == 200, (code, body[:200])
    pairs = zip(origins, marks, strict=True)
    return Counter({o.address: o.path_counts(m)["/work"] for o, m in pairs})


def test_registered_instances_come_and_go_with_their_registrants(
    cluster: tuple[EtcdServer, list[Origin], list[Registrant], GatewayProcess, int],
) -> None:
    etcd, origins, registrants, gw, admin = cluster
    a, b = (o.address for o in origins)
    # both registered, health-checked, then balanced over
    wait_until(lambda: endpoints(admin) == {a: True, b: True}, timeout=5)
    seen = spread(gw.port, origins)
    assert seen[a] > 0 and seen[b] > 0, seen

    # SIGKILL: no deregistration; the key disappears when the lease expires (TTL)
    killed = time.monotonic()
    registrants[0].signal(signal.SIGKILL)
    origins[0].stop()
    wait_until(lambda: PREFIX + a not in etcd.keys(PREFIX), timeout=TTL + 3)
    gone = time.monotonic() - killed
    assert gone >= TTL * 0.5, f"left after {gone:.2f}s, before its lease could expire"
    wait_until(lambda: a not in endpoints(admin), timeout=2)
    seen = spread(gw.port, origins)
    assert seen == Counter({b: 40}), seen

    # SIGTERM: the lease is revoked at once
    stopped = time.monotonic()
    registrants[1].signal(signal.SIGTERM)
    assert registrants[1].proc.returncode == 0
    wait_until(lambda: endpoints(admin) == {}, timeout=1.0)
    assert time.monotonic() - stopped < 1.0
    assert etcd.keys(PREFIX) == []

    # nobody left: a clear 503
    code, body = http_get(gw.port, "/work")
    assert code == 503, (code, body)
    assert json.loads(body)["code"] == "no_healthy_upstream"
