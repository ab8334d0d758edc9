"""Zone-aware routing and label subsets through a real gateway and six real origins.

Origins a1..a3 are in zone a (the gateway's zone, from EDGEWARD_ZONE), b1..b3 in zone b.
`zoned` balances over all six (zone-aware, min_cluster_size 3, active health checks);
`devices` carries labels and is reached through `subset` filters on two routes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.fixtures_etcd import EtcdServer, etcd_fixture  # noqa: F401 - fixtures
from tests.observability.obskit import AdminGateway, value, wait_until

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import get

CONFIG = """
listen: {listen}
admin: {admin}
upstreams:
  zoned:
    targets:
%(zoned)s
    zone_aware: {min_cluster_size: 3}
    health: {path: /status/200, interval: 100ms, timeout: 100ms, unhealthy_after: 1,
             healthy_after: 1}
  devices:
    targets:
%(devices)s
routes:
  - name: zoned
    match: {host: zoned.test}
    upstream: zoned
  - name: strict
    match: {host: strict.test}
    upstream: devices
    filters:
      - subset:
          key: header:x-device-type
          map: {sensor: {class: iot}, camera: {class: video}}
  - name: lenient
    match: {host: lenient.test}
    upstream: devices
    filters:
      - subset: {key: header:x-device-type, map: {sensor: {class: iot}}, fallback: any}
  - name: split
    match: {host: split.test}
    split:
      - {upstream: devices, labels: {class: iot}, when: {header: {x-device-type: sensor}}}
      - {upstream: devices, labels: {class: video}, when: {header: {x-device-type: camera}}}
      - {upstream: devices}
"""


@dataclass
class Fleet:
    gw: AdminGateway
    origins: dict[str, Origin]

    def spread(self, host: str, n: int, headers: list[tuple[str, str]] | None = None
               ) -> Counter[str]:
        """Which origins n requests reached (by name), all answered 200."""
        marks = {name: o.mark() for name, o in self.origins.items()}
        for _ in range(n):
            assert get(self.gw.port, "/echo", headers=headers or [], host=host).status == 200
        seen = {name: sum(r.path == "/echo" for r in o.requests_since(marks[name]))
                for name, o in self.origins.items()}  # health checks ask for /status/200
        return Counter({name: n for name, n in seen.items() if n})


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    names = ["a1", "a2", "a3", "b1", "b2", "b3"]
    origins = {name: Origin().start() for name in names}
    zoned = "\n".join(f"      - {{address: {o.address}, zone: {n[0]}}}"
                      for n, o in origins.items())
    labels = {"a1": "iot", "b1": "iot", "a2": "phone", "b2": "phone", "a3": "phone",
              "b3": "phone"}
    devices = "\n".join(f"      - {{address: {o.address}, labels: {{class: {labels[n]}}}}}"
                        for n, o in origins.items())
    text = CONFIG % {"zoned": zoned, "devices": devices}
    try:
        with AdminGateway(text, env={"EDGEWARD_ZONE": "a"}) as gw:
            yield Fleet(gw, origins)
    finally:
        for o in origins.values():
            o.stop()


def test_a_header_picks_the_labelled_subset(fleet: Fleet) -> None:
    seen = fleet.spread("strict.test", 12, [("x-device-type", "sensor")])
    assert set(seen) == {"a1", "b1"}
    assert set(fleet.spread("lenient.test", 12, [("x-device-type", "sensor")])) == {"a1", "b1"}


def test_no_subset_answers_503_with_fallback_none_and_any_endpoint_with_fallback_any(
        fleet: Fleet) -> None:
    resp = get(fleet.gw.port, "/echo", headers=[("x-device-type", "toaster")],
               host="strict.test")
    assert resp.status == 503 and resp.json()["code"] == "no_subset"
    resp = get(fleet.gw.port, "/echo", headers=[("x-device-type", "camera")],
               host="strict.test")
    assert resp.status == 503 and resp.json()["code"] == "no_subset_endpoint"
    assert len(fleet.spread("lenient.test", 18, [("x-device-type", "toaster")])) > 2


def test_a_split_entry_selects_endpoints_by_labels(fleet: Fleet) -> None:
    assert set(fleet.spread("split.test", 12, [("x-device-type", "sensor")])) == {"a1", "b1"}
    assert len(fleet.spread("split.test", 18)) > 2
    resp = get(fleet.gw.port, "/echo", headers=[("x-device-type", "camera")], host="split.test")
    assert resp.status == 503 and resp.json()["code"] == "no_subset_endpoint"


def test_traffic_stays_in_the_gateway_zone_then_spills_when_it_loses_capacity(
        fleet: Fleet) -> None:
    assert set(fleet.spread("zoned.test", 30)) == {"a1", "a2", "a3"}
    fleet.origins["a1"].stop()
    fleet.origins["a2"].stop()
    admin = fleet.gw

    def both_down() -> bool:
        samples = admin.scrape()
        return all(value(samples, "edgeward_endpoint_healthy", upstream="zoned",
                         endpoint=fleet.origins[n].address) == 0 for n in ("a1", "a2"))

    wait_until(both_down, what="a1 and a2 marked unhealthy")
    # a keeps 1 of 4 healthy (0.25) against its expected half: half stays on a3, half spills
    # to b, spread over b1..b3.
    seen = fleet.spread("zoned.test", 200)
    assert set(seen) == {"a3", "b1", "b2", "b3"}
    assert seen["a3"] > max(seen["b1"], seen["b2"], seen["b3"])
    assert seen["b1"] + seen["b2"] + seen["b3"] > 50


def test_registered_zone_and_labels_reach_the_gateway(etcd: EtcdServer) -> None:
    """`edgeward register --zone --label` -> etcd -> discovery -> a subset route."""
    with Origin() as iot, Origin() as phone:
        text = f"""
listen: {{listen}}
etcd: {{endpoints: ["{etcd.url}"]}}
upstreams:
  reg: {{discovery: {{etcd: devices}}}}
routes:
  - match: {{host: reg.test}}
    upstream: reg
    filters:
      - subset: {{key: header:x-device-type, map: {{sensor: {{class: iot, zone: b}}}}}}
"""
        procs = [subprocess.Popen(
            [sys.executable, "-m", "edgeward.discovery.register", "--etcd", etcd.url,
             "--service", "devices", "--address", o.address, "--zone", "b",
             "--label", f"class={cls}", "--label", "zone=b"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for o, cls in ((iot, "iot"), (phone, "phone"))]
        try:
            with GatewayProcess.config(text) as gw:
                def reached() -> bool:
                    return get(gw.port, "/echo", headers=[("x-device-type", "sensor")],
                               host="reg.test").status == 200
                wait_until(reached, what="the registered iot origin")
                mark = phone.mark()
                for _ in range(10):
                    assert get(gw.port, "/echo", headers=[("x-device-type", "sensor")],
                               host="reg.test").status == 200
                assert phone.requests_since(mark) == []
        finally:
            for p in procs:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(10)
