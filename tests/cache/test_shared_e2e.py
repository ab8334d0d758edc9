"""The shared tier (cache.shared) with a real Redis and two real gateway processes sharing it
(module-scoped). A test waits for events (the `stored` count of edgeward_cache_shared_total,
the fleet reader's applied id), never for time, then proves with requests what each gateway
serves and with the origin's counts whether it was asked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from tests.observability.obskit import AdminGateway, series, wait_until

from cache.cacheorigin import CacheOrigin  # type: ignore[import-not-found]
from support.rawhttp import Response, get
from support.redis_server import RedisServer

CONFIG = """\
listen: {listen}
admin: {admin}
redis: {url: REDIS, timeout: 200ms}
cache:
  fleet: {stream: "{test}:purge", node: NODE}
  shared: {max_entry_size: 1KiB, timeout: 50ms, prefix: "{test}:c"}
upstreams:
  origin: {targets: [ORIGIN]}
routes:
  - match: {host: c.test}
    upstream: origin
    filters: [{cache: {}}]
"""

FRESH = "cc=max-age%3D600"


@dataclass
class Pair:
    redis: RedisServer
    origin: CacheOrigin
    gateways: dict[str, AdminGateway]

    def get(self, node: str, target: str, **kw: object) -> Response:
        return get(self.gateways[node].port, target, host="c.test", **kw)  # type: ignore[arg-type]

    def shared(self, node: str, result: str) -> float:
        found = series(self.gateways[node].scrape(), "edgeward_cache_shared_total")
        return sum(v for labels, v in found.items() if ("result", result) in labels)

    def store_on(self, node: str, target: str, **kw: object) -> Response:
        """A MISS on `node`, waited on until its copy is in Redis."""
        before = self.shared(node, "stored")
        got = self.get(node, target, **kw)
        assert got.header("x-cache") == "MISS", got
        wait_until(lambda: self.shared(node, "stored") > before, what="the shared write")
        return got

    def purge(self, node: str, **body: object) -> dict[str, Any]:
        reply = self.gateways[node].admin("POST", "/cache/purge", json.dumps(body),
                                          {"content-type": "application/json"})
        assert reply.status == 200, reply
        return json.loads(reply.body)  # type: ignore[no-any-return]

    def reached(self, node: str, entry_id: str) -> bool:
        fleet = json.loads(self.gateways[node].admin("GET", "/cache").body)["fleet"]
        ms, _, seq = fleet["applied_id"].partition("-")
        want_ms, _, want_seq = entry_id.partition("-")
        return bool(fleet["connected"]) and (int(ms), int(seq)) >= (int(want_ms),
                                                                     int(want_seq))


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    server = RedisServer().start()
    origin = CacheOrigin().start()
    gateways: dict[str, AdminGateway] = {}
    try:
        for node in ("gw-a", "gw-b"):
            gateways[node] = AdminGateway(
                CONFIG.replace("REDIS", server.url).replace("NODE", node)
                .replace("ORIGIN", origin.address))
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(AdminGateway.__enter__, gateways.values()))
        for node in gateways:
            wait_until(lambda n=node: json.loads(gateways[n].admin("GET", "/cache").body)
                       ["fleet"]["connected"], what=f"{node} reading the stream")
        yield Pair(server, origin, gateways)
    finally:
        for gw in gateways.values():
            gw.__exit__(None, None, None)
        origin.stop()
        server.stop()


def test_a_response_cached_by_one_gateway_is_a_hit_on_the_other(pair: Pair) -> None:
    target = f"/one?{FRESH}"
    first = pair.store_on("gw-a", target)
    hits = pair.shared("gw-b", "hit")
    got = pair.get("gw-b", target)
    assert got.status == 200
    assert got.header("x-cache") == "HIT" and got.header("x-cache-tier") == "shared"
    assert got.body == first.body
    assert pair.origin.count("/one") == 1           # gw-b never asked the origin
    assert pair.shared("gw-b", "hit") == hits + 1
    again = pair.get("gw-b", target)                 # now in gw-b's local tier
    assert again.header("x-cache") == "HIT" and again.header("x-cache-tier") is None
    assert pair.origin.count("/one") == 1


def test_the_shared_copy_keeps_its_variant_and_answers_conditionals(pair: Pair) -> None:
    target = f"/vary?{FRESH}&vary=x-lang&etag=v7"
    pair.store_on("gw-a", target, headers=[("x-lang", "en")])
    other = pair.get("gw-b", target, headers=[("x-lang", "fr")])
    assert other.header("x-cache") == "MISS"         # another variant: not in Redis
    assert pair.origin.count("/vary") == 2
    got = pair.get("gw-b", target, headers=[("x-lang", "en"), ("if-none-match", '"v7"')])
    assert got.status == 304 and got.header("x-cache-tier") == "shared"
    assert pair.origin.count("/vary") == 2


def test_a_purge_removes_the_entry_from_both_tiers(pair: Pair) -> None:
    paths = ("/p/key", "/p/key2", "/p/tagged", "/q/pre/1")
    targets = {p: f"{p}?{FRESH}" + ("&tag=t1" if p == "/p/tagged" else "") for p in paths}
    for target in targets.values():
        pair.store_on("gw-a", target)
        assert pair.get("gw-b", target).header("x-cache-tier") == "shared"
    asked = {p: pair.origin.count(p) for p in paths}
    done = pair.purge("gw-a", keys=[f"c.test/p/key?{FRESH}", f"c.test/p/key2?{FRESH}"],
                      tags=["t1"], prefixes=["c.test/q/pre/"])
    assert done["purged"] == 4 and done["shared_purged"] == 4
    left = pair.redis.command("KEYS", "{test}:c:e:*")
    assert "/p/" not in left and "/q/" not in left  # gone from Redis when the purge returns
    wait_until(lambda: pair.reached("gw-b", done["id"]), what="gw-b applied the purge")
    # Both gateways held each in their local tier, and Redis held it: now none does, so the
    # first request after the purge goes to the origin (whose answer is shared again).
    assert pair.get("gw-a", targets["/p/key"]).header("x-cache") == "MISS"
    for path in ("/p/key2", "/p/tagged", "/q/pre/1"):
        assert pair.get("gw-b", targets[path]).header("x-cache") == "MISS", path
    assert {p: pair.origin.count(p) - n for p, n in asked.items()} == dict.fromkeys(paths, 1)


def test_bodies_above_the_shared_bound_stay_local(pair: Pair) -> None:
    target = f"/big?{FRESH}&size=4096"
    before = pair.shared("gw-a", "too_large")
    assert pair.get("gw-a", target).header("x-cache") == "MISS"
    assert pair.get("gw-a", target).header("x-cache") == "HIT"   # stored locally
    wait_until(lambda: pair.shared("gw-a", "too_large") > before, what="too_large counted")
    assert pair.get("gw-b", target).header("x-cache") == "MISS"
    assert pair.origin.count("/big") == 2


def test_a_slow_or_down_redis_is_a_miss_never_an_error(pair: Pair) -> None:
    pair.store_on("gw-a", f"/down/0?{FRESH}")
    errors = pair.shared("gw-b", "error")
    pair.redis.pause()                                 # hangs: slower than the timeout
    try:
        got = pair.get("gw-b", f"/down/0?{FRESH}")
        assert got.status == 200 and got.header("x-cache") == "MISS"
    finally:
        pair.redis.resume()
    pair.redis.stop()                                  # refuses connections
    try:
        got = pair.get("gw-b", f"/down/1?{FRESH}")
        assert got.status == 200 and got.header("x-cache") == "MISS"
        assert pair.get("gw-b", f"/down/1?{FRESH}").header("x-cache") == "HIT"  # local
    finally:
        pair.redis.start()
    assert pair.shared("gw-b", "error") >= errors + 2
    assert pair.origin.count("/down/0") == 2 and pair.origin.count("/down/1") == 1
