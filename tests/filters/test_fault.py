"""The fault filter without sockets: percentages drawn per request, conditions, counts."""

from __future__ import annotations

import asyncio
import random

from edgeward.filters.api import Reply
from edgeward.filters.events import FilterEvents
from edgeward.filters.fault import Fault
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead
from edgeward.routing.split import Condition


def head(headers: list[tuple[bytes, bytes]] | None = None) -> RequestHead:
    h = RequestHead("GET", b"/", "/", "h", b"h", Headers(headers or []), 0, "10.0.0.1")
    h.route_name = "r"
    return h


def test_abort_percent_is_drawn_per_request() -> None:
    events = FilterEvents()
    f = Fault(abort_status=503, abort_percent=10.0, delay=None, delay_percent=0.0, when=None,
              rng=random.Random(3), events=events)
    aborted = sum(isinstance(f.on_request(head()), Reply) for _ in range(5000))
    assert 400 < aborted < 600
    assert events.counts == {("fault", "r", "abort", ""): aborted}


def test_when_condition() -> None:
    events = FilterEvents()
    f = Fault(abort_status=418, abort_percent=100.0, delay=None, delay_percent=0.0,
              when=Condition(headers={"x-chaos": "1"}), rng=random.Random(1), events=events)
    assert f.on_request(head()) is None
    reply = f.on_request(head([(b"X-Chaos", b"1")]))
    assert isinstance(reply, Reply) and reply.status == 418 and reply.code == "fault_injected"


async def test_delay_then_abort() -> None:
    events = FilterEvents()
    f = Fault(abort_status=503, abort_percent=100.0, delay=0.01, delay_percent=100.0, when=None,
              rng=random.Random(1), events=events)
    waiting = f.on_request(head())
    assert asyncio.iscoroutine(waiting)
    reply = await waiting
    assert isinstance(reply, Reply) and reply.status == 503
    assert events.counts == {("fault", "r", "abort", ""): 1, ("fault", "r", "delay", ""): 1}
