"""`fault`: injected delays and aborts, for chaos drills (Envoy's fault filter, Istio fault
injection). Off unless a route lists it; each injection is counted
(`edgeward_faults_injected_total{route,fault}`).

For each request the `when` condition admits (every request without one), a delay is drawn
with `delay.percent`, then an abort with `abort.percent`, independently (Envoy draws them the
same way). A delayed request is held without a task of its own beyond the filter's wait, then
aborted or let through; an abort answers `abort.status` with code `fault_injected`. It comes
after users' filters (ORDER_FAULT), so what it stands in for is the upstream.
"""

from __future__ import annotations

import asyncio
import random
from typing import ClassVar

from edgeward.filters.api import ORDER_FAULT, Filter, Reply, Request, RequestResult
from edgeward.filters.events import FAULT, FilterEvents
from edgeward.routing.split import Condition


class Fault(Filter):
    order: ClassVar[int] = ORDER_FAULT

    def __init__(self, *, abort_status: int | None, abort_percent: float,
                 delay: float | None, delay_percent: float, when: Condition | None,
                 rng: random.Random, events: FilterEvents) -> None:
        self.name = "fault"
        self.abort_status = abort_status
        self.abort_fraction = abort_percent / 100.0
        self.delay = delay
        self.delay_fraction = delay_percent / 100.0
        self.when = when
        self.rng = rng
        self.events = events

    def on_request(self, req: Request) -> RequestResult:
        when = self.when
        if when is not None and not when.holds(req, req.route_name):
            return None
        rng = self.rng
        delay = self.delay
        if delay is not None and not rng.random() < self.delay_fraction:
            delay = None
        reply: Reply | None = None
        if self.abort_status is not None and rng.random() < self.abort_fraction:
            reply = Reply.error(self.abort_status, "fault_injected")
            self.events.count(FAULT, req.route_name, "abort")
        if delay is None:
            return reply
        self.events.count(FAULT, req.route_name, "delay")
        return _held(delay, reply)


async def _held(delay: float, reply: Reply | None) -> Reply | None:
    await asyncio.sleep(delay)
    return reply
