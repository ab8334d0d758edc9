"""fault over real sockets: aborts with the configured status, delays that hold the request,
`when` conditions, the route timeout over a delay, and the counts."""

from __future__ import annotations

import time

from tests.observability.obskit import value

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import get


def test_abort_answers_with_the_status_and_never_reaches_the_upstream(edge: Edge) -> None:
    mark = edge.echo.mark()
    resp = get(edge.port, "/echo", host="fault-abort.test")
    assert resp.status == 418
    assert resp.json()["code"] == "fault_injected"
    assert edge.echo.requests_since(mark) == []


def test_when_condition_limits_the_fault(edge: Edge) -> None:
    assert get(edge.port, "/echo", host="fault-when.test").status == 200
    resp = get(edge.port, "/echo", host="fault-when.test", headers=[("x-chaos", "1")])
    assert resp.status == 503
    assert resp.json()["code"] == "fault_injected"
    assert get(edge.port, "/echo", host="fault-when.test", headers=[("x-chaos", "0")]).status \
        == 200


def test_delay_holds_the_request_then_forwards_it(edge: Edge) -> None:
    """The origin records when the request reached it: at least the delay after sending."""
    mark = edge.echo.mark()
    sent = time.monotonic()
    resp = get(edge.port, "/echo", host="fault-delay.test")
    assert resp.status == 200
    assert time.monotonic() - sent >= 0.4  # the delay is the behaviour under test
    assert len(edge.echo.requests_since(mark)) == 1


def test_a_delay_past_the_route_timeout_ends_in_filter_timeout(edge: Edge) -> None:
    mark = edge.echo.mark()
    resp = get(edge.port, "/echo", host="fault-slow.test")
    assert resp.status == 504
    assert resp.json()["code"] == "filter_timeout"
    assert edge.echo.requests_since(mark) == []


def test_percent_zero_injects_nothing(edge: Edge) -> None:
    for _ in range(5):
        assert get(edge.port, "/echo", host="fault-none.test").status == 200


def test_faults_are_counted(edge: Edge) -> None:
    before = edge.gw.scrape()
    get(edge.port, "/echo", host="fault-abort.test")
    get(edge.port, "/echo", host="fault-when.test", headers=[("x-chaos", "1")])
    after = edge.gw.scrape()

    def delta(route: str, fault: str) -> float:
        return (value(after, "edgeward_faults_injected_total", route=route, fault=fault)
                - value(before, "edgeward_faults_injected_total", route=route, fault=fault))

    assert delta("fault_abort", "abort") == 1
    assert delta("fault_when", "abort") == 1
    assert delta("fault_when", "delay") == 1
    assert delta("fault_none", "abort") == 0
