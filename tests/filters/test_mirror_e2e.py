"""mirror over real sockets: copies reach the shadow with the marker, bodies included; the
primary never waits for a shadow, nor fails with it; every copy is counted."""

from __future__ import annotations

import json

from tests.observability.obskit import value, wait_until

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import get


def test_copy_reaches_the_shadow_as_forwarded_with_the_marker(edge: Edge) -> None:
    mark = edge.shadow.mark()
    resp = get(edge.port, "/m/orders?x=1", host="mirror.test", method="POST",
               body=b'{"order": 1}', headers=[("x-request-id", "mirror-1")])
    assert resp.status == 200
    primary = json.loads(resp.body)
    copies = wait_until(lambda: edge.shadow.requests_since(mark), what="the copy")
    assert len(copies) == 1
    copy = copies[0]
    assert copy.method == "POST"
    assert copy.target == "/orders?x=1" == primary["target"]  # after the route's rewrite
    assert copy.header("x-edgeward-mirror") == ["1"]
    assert copy.header("x-request-id") == ["mirror-1"]
    assert copy.header("host") == ["mirror.test"]
    assert copy.header("content-length") == ["12"]
    assert "x-edgeward-mirror" not in edge.seen(resp.body)  # the primary is not marked


def test_the_body_of_the_copy_is_the_request_body(edge: Edge) -> None:
    mark = edge.shadow.mark()
    body = b"p" * 3000
    resp = get(edge.port, "/upload", host="mirror.test", method="POST", body=body)
    assert resp.status == 200
    # The shadow is an Origin too: its /upload answers with what it read; the count of bytes
    # it received on the copy's connection covers head and body.
    copies = wait_until(lambda: edge.shadow.requests_since(mark), what="the copy")
    assert copies[0].header("content-length") == ["3000"]


def test_a_body_over_max_body_is_not_copied_but_the_request_goes_on(edge: Edge) -> None:
    before = value(edge.gw.scrape(), "edgeward_mirror_requests_total", route="mirror",
                   upstream="shadow", result="too_large")
    mark = edge.shadow.mark()
    resp = get(edge.port, "/upload", host="mirror.test", method="POST", body=b"q" * 5000)
    assert resp.status == 200 and resp.json()["length"] == 5000
    wait_until(lambda: value(edge.gw.scrape(), "edgeward_mirror_requests_total",
                             route="mirror", upstream="shadow", result="too_large") == before + 1,
               what="too_large counted")
    assert edge.shadow.requests_since(mark) == []


def test_the_primary_does_not_wait_for_a_stuck_shadow(edge: Edge) -> None:
    """The shadow holds its answer until the test releases it; the primary's response has
    already arrived by then (the copy is under way at the shadow meanwhile)."""
    stuck = edge.stuck
    stuck.release.clear()
    stuck.arrived.clear()
    resp = get(edge.port, "/echo", host="mirror-stuck.test")
    assert resp.status == 200
    assert stuck.arrived.wait(10), "the copy never reached the shadow"
    assert not stuck.release.is_set()  # the shadow has not answered, the client has its answer
    stuck.release.set()
    wait_until(lambda: value(edge.gw.scrape(), "edgeward_mirror_requests_total",
                             route="mirror_stuck", upstream="stuck", result="ok") >= 1,
               what="the copy counted ok once answered")


def test_an_unreachable_shadow_changes_nothing_for_the_primary(edge: Edge) -> None:
    for _ in range(3):
        assert get(edge.port, "/echo", host="mirror-dead.test").status == 200
    wait_until(lambda: value(edge.gw.scrape(), "edgeward_mirror_requests_total",
                             route="mirror_dead", upstream="dead", result="error") >= 3,
               what="three failed copies counted")


def test_percent_zero_copies_nothing(edge: Edge) -> None:
    mark = edge.shadow.mark()
    for _ in range(5):
        assert get(edge.port, "/echo", host="mirror-none.test").status == 200
    ok = get(edge.port, "/m/after", host="mirror.test")  # a copy that is made, after them
    assert ok.status == 200
    copies = wait_until(lambda: edge.shadow.requests_since(mark), what="the later copy")
    assert [c.target for c in copies] == ["/after"]
