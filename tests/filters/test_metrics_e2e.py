"""The filters' counters as /metrics shows them, and each route's chain as /routes shows it."""

from __future__ import annotations

from tests.observability.obskit import Samples, value, wait_until

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import get


def counts(samples: Samples) -> dict[str, float]:
    return {
        "gzip": value(samples, "edgeward_compressed_responses_total", route="compress",
                      algorithm="gzip"),
        "cors": value(samples, "edgeward_cors_rejected_total", route="cors"),
        "ip": value(samples, "edgeward_ip_denied_total", route="ip_allow"),
        "mirror": value(samples, "edgeward_mirror_requests_total", route="mirror",
                        upstream="shadow", result="ok"),
    }


def test_each_filter_event_is_counted_once(edge: Edge) -> None:
    before = counts(edge.gw.scrape())
    get(edge.port, "/json?n=5000", host="compress.test", headers=[("accept-encoding", "gzip")])
    get(edge.port, "/json?n=5000", host="compress.test")  # not compressed: not counted
    get(edge.port, "/x", host="cors.test", method="OPTIONS",
        headers=[("origin", "https://evil.example"), ("access-control-request-method", "GET")])
    get(edge.port, "/echo", host="ip-allow.test", headers=[("x-forwarded-for", "192.0.2.9")])
    get(edge.port, "/m/x", host="mirror.test")
    after = wait_until(lambda: (c := counts(edge.gw.scrape()))["mirror"] > before["mirror"]
                       and c, what="the copy's answer counted")
    assert {k: after[k] - before[k] for k in before} == {
        "gzip": 1, "cors": 1, "ip": 1, "mirror": 1}


def test_routes_show_the_filter_chains(edge: Edge) -> None:
    routes = {r["name"]: r for r in edge.gw.admin("GET", "/routes").json()}
    assert [(f["name"], f["kind"]) for f in routes["cors_auth"]["filters"]] == [
        ("web-cors", "cors"), ("DenyAll", "python:edge_auth:DenyAll")]
    assert [f["kind"] for f in routes["mirror"]["filters"]] == ["strip_prefix", "mirror"]
    assert routes["moved"]["redirect"]["status"] == 308
    assert routes["moved"]["filters"] == [{"name": "redirect", "kind": "redirect",
                                           "order": 1000}]
    assert routes["compress_ping"]["respond"]["body_bytes"] > 1000
