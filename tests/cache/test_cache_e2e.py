"""The cache filter over real sockets: one gateway in front of real origins (module-scoped),
each test on its own paths. What a client sees (status, body, X-Cache, Age) and what the
origin was asked (its per-path request counts) prove each behaviour."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from tests.observability.obskit import AdminGateway, wait_until

from cache.cacheorigin import CacheOrigin  # type: ignore[import-not-found]
from support.rawhttp import Response, get

CONFIG = """\
listen: {listen}
admin: {admin}
cache: {max_size: 1MiB, max_entry_size: 64KiB}
upstreams:
  origin: {targets: [ORIGIN]}
  fragile: {targets: [FRAGILE], connect_timeout: 200ms}
routes:
  - name: cached
    match: {host: c.test}
    upstream: origin
    filters:
      - cache:
          key: {query: ["*"], consumer: false}
          purge_on:
            - {path: "/api/users/{id}", keys: ["/api/users/{id}", /api/users], tags: ["user-{id}"]}
          prewarm: {upstream: origin, host: c.test, paths: ["/warm?cc=max-age%3D600"]}
  - name: fragile
    match: {host: f.test}
    upstream: fragile
    filters:
      - cache: {stale_if_error: 1h}
  - name: small
    match: {host: s.test}
    upstream: origin
    filters:
      - cache: {max_entry_size: 1KiB, stale_while_revalidate: 1h}
"""

FRESH = "cc=max-age%3D600"


@dataclass
class Edge:
    gw: AdminGateway
    origin: CacheOrigin
    fragile: CacheOrigin

    def get(self, target: str, host: str = "c.test", **kw: object) -> Response:
        return get(self.gw.port, target, host=host, **kw)  # type: ignore[arg-type]

    def purge(self, **body: object) -> dict[str, object]:
        reply = self.gw.admin("POST", "/cache/purge", json.dumps(body),
                              {"content-type": "application/json"})
        assert reply.status == 200, reply
        return json.loads(reply.body)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    origin, fragile = CacheOrigin().start(), CacheOrigin().start()
    text = CONFIG.replace("ORIGIN", origin.address).replace("FRAGILE", fragile.address)
    try:
        with AdminGateway(text) as gw:
            yield Edge(gw, origin, fragile)
    finally:
        origin.stop()
        fragile.stop()


def test_fresh_response_is_served_from_the_cache(edge: Edge) -> None:
    first = edge.get(f"/fresh?{FRESH}&etag=f1")
    second = edge.get(f"/fresh?{FRESH}&etag=f1")
    assert (first.header("x-cache"), second.header("x-cache")) == ("MISS", "HIT")
    assert second.body == first.body and second.header("etag") == '"f1"'
    assert second.header("age") is not None and int(second.header("age") or "") >= 0
    assert edge.origin.count("/fresh") == 1
    head = edge.get(f"/fresh?{FRESH}&etag=f1", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.header("x-cache") == "HIT"
    assert head.header("content-length") == str(len(first.body))


def test_client_validator_gets_304_from_the_cache(edge: Edge) -> None:
    edge.get(f"/cond?{FRESH}&etag=c1")
    resp = edge.get(f"/cond?{FRESH}&etag=c1", headers=[("if-none-match", '"c1"')])
    assert resp.status == 304 and resp.body == b"" and resp.header("etag") == '"c1"'
    other = edge.get(f"/cond?{FRESH}&etag=c1", headers=[("if-none-match", '"c0"')])
    assert other.status == 200 and other.header("x-cache") == "HIT"
    assert edge.origin.count("/cond") == 1


@pytest.mark.parametrize("cc", ["no-store", "private%2C%20max-age%3D600", "max-age%3D0"])
def test_what_the_origin_forbids_is_not_served_from_the_cache(edge: Edge, cc: str) -> None:
    path = f"/forbid-{cc[:6]}"
    for _ in range(2):
        resp = edge.get(f"{path}?cc={cc}")
        assert resp.header("x-cache") in ("BYPASS", "MISS")
    assert edge.origin.count(path) == 2


def test_set_cookie_responses_are_not_shared(edge: Edge) -> None:
    for _ in range(2):
        assert edge.get(f"/cookie?{FRESH}&cookie=s%3D1").header("x-cache") == "BYPASS"
    assert edge.origin.count("/cookie") == 2


def test_vary_keeps_one_variant_per_field_value(edge: Edge) -> None:
    target = f"/vary?{FRESH}&vary=x-lang"
    en = edge.get(target, headers=[("x-lang", "en")])
    fr = edge.get(target, headers=[("x-lang", "fr")])
    assert b"lang=en" in en.body and b"lang=fr" in fr.body
    again_en = edge.get(target, headers=[("x-lang", "en")])
    again_fr = edge.get(target, headers=[("x-lang", "fr")])
    assert (again_en.header("x-cache"), again_fr.header("x-cache")) == ("HIT", "HIT")
    assert again_en.body == en.body and again_fr.body == fr.body
    assert edge.origin.count("/vary") == 2


def test_authorization_is_not_shared_unless_the_origin_says_public(edge: Edge) -> None:
    alice = [("authorization", "Bearer alice")]
    bob = [("authorization", "Bearer bob")]
    edge.get(f"/private?{FRESH}", headers=alice)
    resp = edge.get(f"/private?{FRESH}", headers=bob)
    assert b"auth=Bearer bob" in resp.body and resp.header("x-cache") == "BYPASS"
    assert edge.origin.count("/private") == 2
    public = "cc=public%2C%20max-age%3D600"
    edge.get(f"/public?{public}", headers=alice)
    shared = edge.get(f"/public?{public}", headers=bob)
    assert shared.header("x-cache") == "HIT" and b"auth=Bearer alice" in shared.body
    assert edge.origin.count("/public") == 1


def test_concurrent_misses_make_one_upstream_request(edge: Edge) -> None:
    target = f"/herd?{FRESH}&ms=300"
    with ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(lambda _: edge.get(target), range(100)))
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1
    assert edge.origin.count("/herd") == 1
    labels = [r.header("x-cache") for r in replies]
    assert labels.count("MISS") == 1 and labels.count("HIT") == 99


def test_revalidation_asks_with_the_validator_and_keeps_the_body(edge: Edge) -> None:
    target = "/reval?cc=max-age%3D0&etag=r1"
    first = edge.get(target)
    second = edge.get(target)
    assert second.status == 200 and second.header("x-cache") == "REVALIDATED"
    assert second.body == first.body
    assert edge.origin.conditional["/reval"] == 1


def test_stale_if_error_with_the_origin_down(edge: Edge) -> None:
    target = "/sie?cc=max-age%3D0&etag=s1"
    first = edge.get(target, host="f.test")
    edge.fragile.down = True  # answers 503
    stale = edge.get(target, host="f.test")
    assert (stale.status, stale.header("x-cache"), stale.body) == (200, "STALE", first.body)
    edge.fragile.stop()       # refuses connections: the gateway's own 502
    gone = edge.get(target, host="f.test")
    assert (gone.status, gone.header("x-cache"), gone.body) == (200, "STALE", first.body)
    miss = edge.get("/never-stored", host="f.test")
    assert miss.status == 502


def test_stale_while_revalidate_serves_at_once_and_refreshes(edge: Edge) -> None:
    target = "/swr?cc=max-age%3D0&etag=w1"
    edge.get(target, host="s.test")
    stale = edge.get(target, host="s.test")
    assert stale.header("x-cache") == "STALE"
    wait_until(lambda: edge.origin.conditional["/swr"] >= 1, what="background revalidation")


def test_entries_over_the_route_limit_pass_uncached(edge: Edge) -> None:
    for _ in range(2):
        resp = edge.get(f"/large?{FRESH}&size=2000", host="s.test")
        assert len(resp.body) == 2000 and resp.header("x-cache") == "BYPASS"
    assert edge.origin.count("/large") == 2


def test_admin_purge_by_key_prefix_and_tag(edge: Edge) -> None:
    for path in ("/p/a", "/p/b", "/q/c"):
        edge.get(f"{path}?{FRESH}&tag=t-{path[1]}")
    assert edge.purge(keys=[f"c.test/p/a?{FRESH}&tag=t-p"])["purged"] == 1
    assert edge.get(f"/p/a?{FRESH}&tag=t-p").header("x-cache") == "MISS"
    assert edge.purge(prefixes=["c.test/p/"])["purged"] == 2
    assert edge.purge(tags=["t-q"])["purged"] == 1
    assert edge.get(f"/q/c?{FRESH}&tag=t-q").header("x-cache") == "MISS"
    bad = edge.gw.admin("POST", "/cache/purge", '{"keys": "x"}',
                        {"content-type": "application/json"})
    assert bad.status == 400 and json.loads(bad.body)["code"] == "invalid_purge"


def test_a_write_purges_its_target_and_the_rule_s_keys(edge: Edge) -> None:
    for path in ("/api/users/7", "/api/users", "/api/users/8"):
        edge.get(f"{path}?{FRESH}")
    edge.get(f"/api/users/9?{FRESH}&tag=user-7")
    put = edge.get("/api/users/7", method="PUT", body=b"{}")
    assert put.status == 200
    labels = {p: edge.get(f"{p}?{FRESH}" + ("&tag=user-7" if p.endswith("9") else ""))
              .header("x-cache") for p in ("/api/users/7", "/api/users", "/api/users/8",
                                          "/api/users/9")}
    assert labels == {"/api/users/7": "MISS", "/api/users": "MISS", "/api/users/8": "HIT",
                      "/api/users/9": "MISS"}


def test_prewarmed_key_is_a_hit_at_once_and_after_a_purge(edge: Edge) -> None:
    wait_until(lambda: edge.origin.count("/warm") >= 1, what="prewarm at start")
    wait_until(lambda: edge.get("/warm?cc=max-age%3D600").header("x-cache") == "HIT",
               what="prewarmed entry")
    assert edge.origin.count("/warm") == 1
    edge.purge(keys=["c.test/warm?cc=max-age%3D600"])
    wait_until(lambda: edge.origin.count("/warm") == 2, what="prewarm after purge")
    wait_until(lambda: edge.get("/warm?cc=max-age%3D600").header("x-cache") == "HIT",
               what="prewarmed again")


def test_metrics_count_results_and_bytes(edge: Edge) -> None:
    edge.get(f"/m?{FRESH}")
    edge.get(f"/m?{FRESH}")
    samples = edge.gw.scrape()
    hits = samples[("edgeward_cache_requests_total", (("result", "HIT"), ("route", "cached")))]
    assert hits >= 1
    served = samples[("edgeward_cache_served_bytes_total", (("route", "cached"),))]
    assert served > 0
