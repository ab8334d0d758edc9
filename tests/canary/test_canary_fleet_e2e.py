"""Fleet canaries end to end: real etcd, two real gateway processes, real origins.

Both gateways apply the weight of the state in etcd; killing the leader (SIGKILL: its lease
must expire) hands the decisions to the other gateway, and the canary goes on from its step
(one `start` in the whole history); a gateway started again reads the state and applies the
fleet's weight; a failing canary that both gateways serve is rolled back fleet-wide; a
command given to one gateway is written to etcd and applied by the other.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.canary.test_canary_e2e import Origin, Traffic, admin_call, wait_for
from tests.fixtures_etcd import EtcdServer, etcd_fixture  # noqa: F401 - fixture

from support.gateway import GatewayProcess, free_port, port_accepts

PREFIX = "/fleet-test/canary/"

CONFIG = """
listen: "{listen}"
admin: "127.0.0.1:%(admin)d"
etcd: {endpoints: ["%(etcd)s"], timeout: 2s}
upstreams:
  stable: {targets: ["%(stable)s"]}
  good: {targets: ["%(good)s"]}
  bad: {targets: ["%(bad)s"]}
routes:
  - name: good
    match: {path_prefix: /good}
    canary:
      stable: stable
      canary: good
      step_weight: 10
      max_weight: 90
      step_interval: 400ms
      min_requests: 10
      fleet: {etcd_prefix: "%(prefix)s", lease_ttl: 2s}
  - name: bad
    match: {path_prefix: /bad}
    canary:
      stable: stable
      canary: bad
      step_weight: 50
      max_weight: 50
      step_interval: 400ms
      min_requests: 10
      fleet: {etcd_prefix: "%(prefix)s", lease_ttl: 2s}
  - name: manual
    match: {path_prefix: /manual}
    canary:
      stable: stable
      canary: good
      step_weight: 30
      step_interval: 1h
      autostart: false
      fleet: {etcd_prefix: "%(prefix)s", lease_ttl: 2s}
"""


class Gateway:
    def __init__(self, etcd: EtcdServer, origins: dict[str, Origin]) -> None:
        self.admin = free_port()
        host, port = etcd.endpoint
        text = CONFIG % {"admin": self.admin, "etcd": f"{host}:{port}", "prefix": PREFIX,
                         **{k: o.address for k, o in origins.items()}}
        self.process = GatewayProcess.config(text).start()
        wait_for(lambda: port_accepts(self.admin))   # the admin API starts after the listener

    @property
    def member(self) -> str:
        return f"-{self.process.pid}"

    def view(self, route: str) -> dict[str, Any]:
        if self.process.proc is not None and self.process.proc.poll() is not None:
            raise AssertionError(self.process.stderr_text())
        try:
            status, view = admin_call(self.admin, "GET", f"/canaries?route={route}")
        except ConnectionRefusedError:
            raise AssertionError(self.process.stderr_text()) from None
        assert status == 200, view
        return view


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    made = {"stable": Origin("stable"), "good": Origin("good"),
            "bad": Origin("bad", error_rate=0.5)}
    yield made
    for o in made.values():
        o.close()


@pytest.fixture(scope="module")
def fleet(etcd: EtcdServer, origins: dict[str, Origin]) -> Iterator[list[Gateway]]:
    gateways = [Gateway(etcd, origins), Gateway(etcd, origins)]
    yield gateways
    for gw in gateways:
        if gw.process.proc is not None and gw.process.proc.poll() is None:
            gw.process.stop()


def state(etcd: EtcdServer, route: str) -> dict[str, Any]:
    out = etcd.etcdctl("get", f"{PREFIX}{route}/state", "--print-value-only").strip()
    return json.loads(out) if out else {}


def leader(etcd: EtcdServer, route: str) -> str:
    return etcd.etcdctl("get", f"{PREFIX}{route}/leader", "--print-value-only").strip()


def test_the_fleet_splits_alike_and_a_new_leader_resumes_the_canary(
        etcd: EtcdServer, origins: dict[str, Origin], fleet: list[Gateway]) -> None:
    traffic = [Traffic(gw.process.port, "/good/x", clients=2) for gw in fleet]
    try:
        wait_for(lambda: state(etcd, "good").get("step", 0) >= 2,
                 state=lambda: state(etcd, "good"))
        # Both gateways apply the state's weight (each reads it from its watch).
        wait_for(lambda: len({gw.view("good")["weight"] for gw in fleet}
                             | {state(etcd, "good")["weight"]}) == 1,
                 state=lambda: [gw.view("good")["weight"] for gw in fleet])
        first = leader(etcd, "good")
        [old] = [gw for gw in fleet if first.endswith(gw.member)]
        [other] = [gw for gw in fleet if gw is not old]
        traffic[fleet.index(old)].close()
        old.process.stop(signal.SIGKILL)
        killed = time.monotonic()
        at_kill = state(etcd, "good")
        wait_for(lambda: leader(etcd, "good").endswith(other.member),
                 state=lambda: leader(etcd, "good"))
        print(f"leader killed at step {at_kill['step']}; the other gateway leads "
              f"{(time.monotonic() - killed) * 1000:.0f} ms later (lease_ttl 2s)")
        wait_for(lambda: state(etcd, "good")["step"] > at_kill["step"]
                 or state(etcd, "good")["phase"] == "promoted",
                 state=lambda: state(etcd, "good"))
        after = state(etcd, "good")
        assert after["step"] >= at_kill["step"]
        kinds = [d["decision"] for d in after["decisions"]]
        assert kinds.count("start") == 1, kinds   # resumed, never started over
        # A gateway started again reads the state and applies the fleet's weight.
        fleet[fleet.index(old)] = again = Gateway(etcd, origins)
        wait_for(lambda: again.view("good")["weight"] == state(etcd, "good")["weight"]
                 and again.view("good")["step"] == state(etcd, "good")["step"],
                 state=lambda: (again.view("good"), state(etcd, "good")))
        # The new leader takes the canary through confirmation to the promotion.
        wait_for(lambda: all(gw.view("good")["phase"] == "promoted"
                             and gw.view("good")["weight"] == 100 for gw in fleet),
                 state=lambda: state(etcd, "good"))
        kinds = [d["decision"] for d in state(etcd, "good")["decisions"]]
        assert kinds.count("start") == 1 and kinds[-2:] == ["confirm", "promote"], kinds
    finally:
        for t in traffic:
            t.close()


def test_a_failing_canary_is_rolled_back_fleet_wide(
        etcd: EtcdServer, fleet: list[Gateway]) -> None:
    traffic = [Traffic(gw.process.port, "/bad/x", clients=2) for gw in fleet]
    try:
        wait_for(lambda: state(etcd, "bad").get("phase") == "rolled_back",
                 state=lambda: state(etcd, "bad"))
        members = etcd.keys(f"{PREFIX}bad/members/")
        assert {m.rsplit("-", 1)[1] for m in members} >= {
            str(gw.process.pid) for gw in fleet}, members
        wait_for(lambda: all(gw.view("bad")["weight"] == 0
                             and gw.view("bad")["phase"] == "rolled_back" for gw in fleet),
                 state=lambda: [gw.view("bad") for gw in fleet])
        kinds = [d["decision"] for d in state(etcd, "bad")["decisions"]]
        assert kinds.count("start") == 1 and kinds[-1] == "rollback", kinds
    finally:
        for t in traffic:
            t.close()


def test_a_command_on_one_gateway_applies_on_every_gateway(
        etcd: EtcdServer, fleet: list[Gateway]) -> None:
    a, b = fleet
    assert b.view("manual")["phase"] == "idle" and state(etcd, "manual") == {}
    status, body = admin_call(a.admin, "POST", "/canaries/start?route=manual")
    assert status == 200 and body["decision"]["weight"] == 30, body
    wait_for(lambda: b.view("manual")["phase"] == "progressing"
             and b.view("manual")["weight"] == 30, state=lambda: b.view("manual"))
    status, body = admin_call(b.admin, "POST", "/canaries/pause?route=manual")
    assert status == 200, body
    wait_for(lambda: a.view("manual")["phase"] == "paused", state=lambda: a.view("manual"))
    assert [d["decision"] for d in state(etcd, "manual")["decisions"]] == ["start", "pause"]
