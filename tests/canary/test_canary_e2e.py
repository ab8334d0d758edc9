"""Canaries end to end: a real gateway process, real origins, the admin API and the CLI.

A canary whose upstream fails is rolled back (and the post-rollback webhook told); a good one
steps up, passes the pre-promotion webhook and is promoted; a sticky key keeps each user on
one arm; a forcing header always picks the canary; pause and abort work from the CLI. Steps
are 200 ms so each rollout takes about a second.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from support.gateway import GatewayProcess, free_port


class Origin:
    """An origin that answers its name, failing a fraction of requests with 500; it records
    the JSON bodies POSTed to it (a webhook receiver)."""

    def __init__(self, name: str, error_rate: float = 0.0, hook_status: int = 200,
                 delay: float = 0.0) -> None:
        self.name, self.error_rate, self.hook_status = name, error_rate, hook_status
        self.delay = delay
        self.posts: list[dict[str, Any]] = []
        rng = random.Random(name)
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # head and body in one write (no Nagle/delayed-ACK stall)

            def do_GET(self) -> None:  # noqa: N802
                if origin.delay:
                    time.sleep(origin.delay)
                status = 500 if rng.random() < origin.error_rate else 200
                self._answer(status, origin.name.encode())

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                origin.posts.append({"path": self.path, **json.loads(body)})
                self._answer(origin.hook_status, b"{}")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CONFIG = """
listen: "{listen}"
admin: "127.0.0.1:%(admin)d"
upstreams:
  stable: {targets: ["%(stable)s"]}
  good: {targets: ["%(good)s"]}
  bad: {targets: ["%(bad)s"]}
  hooks: {targets: ["%(hooks)s"]}
  slow: {targets: ["%(slow)s"]}
  slower:
    targets: ["%(slow)s"]
    circuit_breaker: {rollout_failure_rate: {base: 0.03, span: 0.02}}
routes:
  - name: good
    match: {path_prefix: /good}
    canary:
      stable: stable
      canary: good
      step_weight: 25
      max_weight: 50
      step_interval: 200ms
      min_requests: 20
      autostart: false
      pre_promotion: {upstream: hooks, path: /pre, timeout: 2s}
  - name: bad
    match: {path_prefix: /bad}
    canary:
      stable: stable
      canary: bad
      step_weight: 50
      max_weight: 50
      step_interval: 200ms
      min_requests: 20
      autostart: false
      post_rollback: {upstream: hooks, path: /rolled-back, timeout: 2s}
  - name: slow
    match: {path_prefix: /slow}
    canary:
      stable: stable
      canary: slow
      step_weight: 50
      max_weight: 50
      step_interval: 200ms
      min_requests: 20
      autostart: false
  - name: watched
    match: {path_prefix: /watched}
    canary:
      stable: stable
      canary: slower
      step_interval: 1h
      min_requests: 20
      autostart: false
      analysis: {min_latency_delta: 1h}   # never judged slow: this route is about the breaker
  - name: idle
    match: {path_prefix: /idle}
    canary: {stable: stable, canary: good, step_interval: 200ms, min_requests: 5}
  - name: sticky
    match: {path_prefix: /sticky}
    canary:
      stable: stable
      canary: good
      step_weight: 30
      step_interval: 1h
      min_requests: 1000000   # never judged here: this route is about who goes where
      sticky_key: "header:x-user-id"
      force_canary: {header: {x-canary: always}}
"""


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    made = {"stable": Origin("stable"), "good": Origin("good"),
            "bad": Origin("bad", error_rate=0.3), "hooks": Origin("hooks"),
            "slow": Origin("slow", delay=0.05)}
    yield made
    for o in made.values():
        o.close()


@pytest.fixture(scope="module")
def gateway(origins: dict[str, Origin]) -> Iterator[tuple[GatewayProcess, int]]:
    admin = free_port()
    text = CONFIG % {"admin": admin, **{k: o.address for k, o in origins.items()}}
    with GatewayProcess.config(text) as gw:
        yield gw, admin


def admin_call(admin: int, method: str, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None,
                     headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def canary(admin: int, route: str) -> dict[str, Any]:
    status, view = admin_call(admin, "GET", f"/canaries?route={route}")
    assert status == 200, view
    return view


def cli(admin: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeward.cli", "canary", *args,
                           "--admin", f"127.0.0.1:{admin}"],
                          capture_output=True, text=True, timeout=30)


class Traffic:
    """Keep-alive clients sending GETs to one path until stopped; what each answer said."""

    def __init__(self, port: int, path: str, clients: int = 3) -> None:
        self.port, self.path = port, path
        self.stop = threading.Event()
        self.answers: list[tuple[int, bytes]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            conn.request("GET", self.path)
            resp = conn.getresponse()
            self.answers.append((resp.status, resp.read()))

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def wait_for(check: Callable[[], bool], timeout: float = 20.0,
             state: Callable[[], object] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"condition not reached in time: {state()}"
        time.sleep(0.02)


def test_failing_canary_is_rolled_back_and_the_webhook_told(
        gateway: tuple[GatewayProcess, int], origins: dict[str, Origin]) -> None:
    gw, admin = gateway
    traffic = Traffic(gw.port, "/bad/x")
    try:
        wait_for(lambda: len(traffic.answers) > 0)
        started = time.monotonic()
        status, body = admin_call(admin, "POST", "/canaries/start?route=bad")
        assert status == 200 and body["decision"]["weight"] == 50
        wait_for(lambda: canary(admin, "bad")["phase"] == "rolled_back",
                 state=lambda: canary(admin, "bad")["history"])
        rolled_back_after = time.monotonic() - started
        served_before = len(traffic.answers)
        wait_for(lambda: len(traffic.answers) > served_before + 50)
    finally:
        traffic.close()
    view = canary(admin, "bad")
    assert view["weight"] == 0
    last = view["history"][-1]
    assert last["decision"] == "rollback" and "error rate" in last["reason"]
    assert last["figures"]["canary"]["errors"] > 0
    # After the rollback every request goes to stable.
    assert {body for _, body in traffic.answers[served_before + 5:]} == {b"stable"}
    wait_for(lambda: any(p["path"] == "/rolled-back" for p in origins["hooks"].posts))
    hook = next(p for p in origins["hooks"].posts if p["path"] == "/rolled-back")
    assert hook["route"] == "bad" and hook["decision"] == "rollback"
    print(f"bad canary rolled back {rolled_back_after * 1000:.0f} ms after start "
          f"(step_interval 200ms, min_requests 20)")
    status, metrics_body = 0, ""
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    status, metrics_body = resp.status, resp.read().decode()
    assert 'edgeward_canary_weight{route="bad"} 0' in metrics_body
    assert 'edgeward_canary_decisions_total{route="bad",decision="rollback"} 1' in metrics_body


def test_good_canary_steps_up_and_is_promoted_after_the_webhook(
        gateway: tuple[GatewayProcess, int], origins: dict[str, Origin]) -> None:
    gw, admin = gateway
    traffic = Traffic(gw.port, "/good/x")
    try:
        done = cli(admin, "start", "good")
        assert done.returncode == 0, done.stderr
        assert "start: weight 0 -> 25%" in done.stdout
        wait_for(lambda: canary(admin, "good")["phase"] == "promoted",
                 state=lambda: canary(admin, "good")["history"])
        served_before = len(traffic.answers)
        wait_for(lambda: len(traffic.answers) > served_before + 50)
    finally:
        traffic.close()
    view = canary(admin, "good")
    kinds = [h["decision"] for h in view["history"]]
    assert kinds[0] == "start" and kinds[-2:] == ["confirm", "promote"]
    assert "advance" in kinds and "rollback" not in kinds
    weights = [h["weight"] for h in view["history"] if h["decision"] in ("start", "advance")]
    assert weights == [25, 50]
    assert {body for _, body in traffic.answers[served_before + 5:]} == {b"good"}
    pre = [p for p in origins["hooks"].posts if p["path"] == "/pre"]
    assert len(pre) == 1 and pre[0]["decision"] == "confirm" and pre[0]["weight"] == 50
    status = cli(admin, "status", "good")
    assert status.returncode == 0 and "good: promoted weight 100%" in status.stdout


def test_fifty_ms_slower_canary_is_rolled_back(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    traffic = Traffic(gw.port, "/slow/x")
    try:
        wait_for(lambda: len(traffic.answers) > 0)
        status, _ = admin_call(admin, "POST", "/canaries/start?route=slow")
        assert status == 200
        wait_for(lambda: canary(admin, "slow")["phase"] == "rolled_back",
                 state=lambda: canary(admin, "slow")["history"])
    finally:
        traffic.close()
    last = canary(admin, "slow")["history"][-1]
    assert last["decision"] == "rollback" and "latency up" in last["reason"], last
    figures = last["figures"]
    assert figures["canary"]["p50_ms"] >= figures["stable"]["p50_ms"] + 45
    assert figures["canary"]["errors"] == 0


def upstream(admin: int, name: str) -> dict[str, Any]:
    status, views = admin_call(admin, "GET", "/upstreams")
    assert status == 200, views
    return next(v for v in views if v["name"] == name)


def test_a_running_canary_hands_its_latency_ratio_to_its_breaker(
        gateway: tuple[GatewayProcess, int]) -> None:
    """circuit_breaker.rollout_failure_rate: the canary arm's p99 over the stable arm's reaches
    the canary upstream's breakers while the rollout runs, and leaves when it ends."""
    gw, admin = gateway
    assert upstream(admin, "slower")["rollout_latency_ratio"] is None
    traffic = Traffic(gw.port, "/watched/x")
    try:
        status, _ = admin_call(admin, "POST", "/canaries/start?route=watched")
        assert status == 200
        wait_for(lambda: (upstream(admin, "slower")["rollout_latency_ratio"] or 0) > 2,
                 state=lambda: (upstream(admin, "slower"), canary(admin, "watched")))
        status, _ = admin_call(admin, "POST", "/canaries/abort?route=watched")
        assert status == 200
        wait_for(lambda: upstream(admin, "slower")["rollout_latency_ratio"] is None,
                 state=lambda: upstream(admin, "slower"))
    finally:
        traffic.close()
    assert canary(admin, "watched")["phase"] == "aborted"


def test_a_canary_without_traffic_holds_and_says_so(gateway: tuple[GatewayProcess, int]
                                                    ) -> None:
    _, admin = gateway
    wait_for(lambda: any(h["decision"] == "hold" for h in canary(admin, "idle")["history"]))
    view = canary(admin, "idle")
    hold = next(h for h in view["history"] if h["decision"] == "hold")
    assert "no traffic" in hold["reason"]
    assert (view["phase"], view["weight"]) == ("progressing", 10)  # held, not passed


def test_sticky_users_stay_on_one_arm_and_overrides_pick_the_canary(
        gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    assert canary(admin, "sticky")["weight"] == 30
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)

    def get(headers: dict[str, str]) -> bytes:
        conn.request("GET", "/sticky/x", headers=headers)
        resp = conn.getresponse()
        return resp.read()

    arms = {}
    for user in range(60):
        seen = {get({"x-user-id": f"user-{user}"}) for _ in range(4)}
        assert len(seen) == 1, f"user-{user} flapped between {seen}"
        arms[user] = seen.pop()
    assert set(arms.values()) == {b"stable", b"good"}  # 30 % of 60 users: both arms used
    assert {get({"x-user-id": "user-1", "x-canary": "always"}) for _ in range(5)} == {b"good"}
    paused = cli(admin, "pause", "sticky")
    assert paused.returncode == 0 and "pause: weight 30 -> 30%" in paused.stdout
    again = cli(admin, "pause", "sticky")
    assert again.returncode == 1 and "409 canary_conflict" in again.stderr
    aborted = cli(admin, "abort", "sticky")
    assert aborted.returncode == 0 and "abort: weight 30 -> 0%" in aborted.stdout
    assert {get({"x-user-id": f"user-{u}"}) for u in range(20)} == {b"stable"}
    conn.close()


def test_admin_refusals(gateway: tuple[GatewayProcess, int]) -> None:
    _, admin = gateway
    status, body = admin_call(admin, "POST", "/canaries/start?route=nope")
    assert (status, body["code"]) == (404, "canary_not_found")
    status, body = admin_call(admin, "POST", "/canaries/start")
    assert (status, body["code"]) == (400, "bad_request")
    status, body = admin_call(admin, "GET", "/canaries?route=nope")
    assert (status, body["code"]) == (404, "canary_not_found")
    status, views = admin_call(admin, "GET", "/canaries")
    assert status == 200 and {v["route"] for v in views} == {"good", "bad", "slow", "watched",
                                                             "idle", "sticky"}
    done = cli(admin, "start")
    assert done.returncode == 2 and "name the ROUTE" in done.stderr
