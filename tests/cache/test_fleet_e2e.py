"""Fleet-wide purges over a real Redis Stream, with three real gateway processes sharing it
(module-scoped). Each gateway's GET /cache says how far it has read the stream
(`fleet.applied_id`), so a test waits for that event, never for time, and then proves with a
request what the gateway serves."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from tests.observability.obskit import AdminGateway, wait_until

from cache.cacheorigin import CacheOrigin  # type: ignore[import-not-found]
from support.rawhttp import Response, get
from support.redis_server import RedisServer

STREAM = "test:cache:purge"
WINDOW = 8

CONFIG = """\
listen: {listen}
admin: {admin}
redis: REDIS
cache:
  fleet: {stream: STREAM, window: WINDOW, node: NODE}
upstreams:
  origin: {targets: [ORIGIN]}
routes:
  - match: {host: c.test}
    upstream: origin
    filters:
      - cache:
          purge_on: [{path: "/api/items/{id}", keys: ["/api/items/{id}"]}]
"""

FRESH = "cc=max-age%3D600"


def _id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


@dataclass
class Fleet:
    redis: RedisServer
    client: Any
    origin: CacheOrigin
    gateways: dict[str, AdminGateway]

    def get(self, node: str, target: str, **kw: object) -> Response:
        return get(self.gateways[node].port, target, host="c.test", **kw)  # type: ignore[arg-type]

    def view(self, node: str) -> dict[str, Any]:
        reply = self.gateways[node].admin("GET", "/cache")
        assert reply.status == 200, reply
        return json.loads(reply.body)  # type: ignore[no-any-return]

    def purge(self, node: str, **body: object) -> dict[str, Any]:
        reply = self.gateways[node].admin("POST", "/cache/purge", json.dumps(body),
                                          {"content-type": "application/json"})
        assert reply.status == 200, reply
        return json.loads(reply.body)  # type: ignore[no-any-return]

    def reached(self, node: str, entry_id: str) -> bool:
        fleet = self.view(node)["fleet"]
        return fleet["connected"] and _id(fleet["applied_id"]) >= _id(entry_id)

    def fill(self, target: str) -> None:
        """Store `target` on every gateway (a HIT on each proves it)."""
        for node in self.gateways:
            self.get(node, target)
            assert self.get(node, target).header("x-cache") == "HIT"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    server = RedisServer().start()
    server.command("CONFIG", "SET", "stream-node-max-entries", "2")  # trims in small steps
    origin = CacheOrigin().start()
    gateways: dict[str, AdminGateway] = {}
    try:
        for node in ("gw-a", "gw-b", "gw-c"):
            gateways[node] = AdminGateway(
                CONFIG.replace("REDIS", server.url).replace("STREAM", STREAM)
                .replace("WINDOW", str(WINDOW)).replace("NODE", node)
                .replace("ORIGIN", origin.address))
        with ThreadPoolExecutor(max_workers=3) as pool:  # three starts at once
            list(pool.map(AdminGateway.__enter__, gateways.values()))
        client = redis.Redis.from_url(server.url, decode_responses=True)
        for node in gateways:
            wait_until(lambda n=node: gateways[n].admin("GET", "/cache").status == 200
                       and json.loads(gateways[n].admin("GET", "/cache").body)["fleet"]
                       ["connected"], what=f"{node} reading the stream")
        yield Fleet(server, client, origin, gateways)
    finally:
        for gw in gateways.values():
            gw.__exit__(None, None, None)
        origin.stop()
        server.stop()


def test_a_purge_on_one_gateway_is_seen_by_the_others(fleet: Fleet) -> None:
    target = f"/shared?{FRESH}"
    fleet.fill(target)
    done = fleet.purge("gw-a", keys=[f"c.test{target}"])
    assert done["purged"] == 1 and done["id"]
    assert fleet.get("gw-a", target).header("x-cache") == "MISS"  # here: at once
    # The purge returned: once each gateway has read up to its entry, none serves the copy.
    for node in ("gw-b", "gw-c"):
        wait_until(lambda n=node: fleet.reached(n, done["id"]), what=f"{node} applied")
        assert fleet.get(node, target).header("x-cache") == "MISS"


def test_a_write_through_one_gateway_purges_everywhere(fleet: Fleet) -> None:
    target = f"/api/items/5?{FRESH}"
    fleet.fill(target)
    before = {n: fleet.view(n)["purges_applied"] for n in ("gw-b", "gw-c")}
    assert fleet.get("gw-a", "/api/items/5", method="PUT", body=b"{}").status == 200
    for node in ("gw-b", "gw-c"):
        # the rule's purges (the target and the rule's key, each as key and query prefix)
        wait_until(lambda n=node: fleet.view(n)["purges_applied"] >= before[n] + 4,
                   what=f"{node} applied the write's purges")
        assert fleet.get(node, target).header("x-cache") == "MISS"


def test_a_gateway_killed_during_purges_catches_up_on_restart(fleet: Fleet) -> None:
    gw = fleet.gateways["gw-c"]
    last = ""
    for i in range(6):
        if i == 3:
            os.kill(gw.gw.pid, signal.SIGKILL)
            gw.gw.wait()
        last = fleet.purge("gw-a", keys=[f"c.test/gone-{i}"])["id"]
    group = next(g for g in fleet.client.xinfo_groups(STREAM) if g["name"] == "gw-c")
    assert _id(group["last-delivered-id"]) < _id(last)  # it missed some
    gw.__enter__()  # the same config: the same consumer group
    wait_until(lambda: fleet.reached("gw-c", last), what="gw-c caught up")
    view = fleet.view("gw-c")
    assert view["purges_applied"] >= 3 and view["fleet"]["window_flushes"] == 0
    group = next(g for g in fleet.client.xinfo_groups(STREAM) if g["name"] == "gw-c")
    assert group["pending"] == 0 and group["last-delivered-id"] == last


def test_a_gateway_behind_the_window_flushes_its_cache(fleet: Fleet) -> None:
    target = f"/kept?{FRESH}"
    fleet.fill(target)
    gw = fleet.gateways["gw-b"]
    os.kill(gw.gw.pid, signal.SIGSTOP)
    try:
        last = ""
        for i in range(3 * WINDOW):  # none of these names /kept
            last = fleet.purge("gw-a", keys=[f"c.test/other-{i}"])["id"]
        assert fleet.client.xlen(STREAM) < 3 * WINDOW  # the stream was trimmed
    finally:
        os.kill(gw.gw.pid, signal.SIGCONT)
    wait_until(lambda: fleet.reached("gw-b", last), what="gw-b read on")
    assert fleet.view("gw-b")["fleet"]["window_flushes"] == 1
    assert fleet.get("gw-b", target).header("x-cache") == "MISS"   # flushed
    assert fleet.get("gw-c", target).header("x-cache") == "HIT", fleet.view("gw-c")  # kept up
