"""What every exchange of a worker shares (the `ExchangeFactory` that makes them is one).

It carries the config snapshot in force (swapped on reload: exchanges keep the
snapshot they started with), the listener settings the exchange needs (body timeout, trusted
proxies), the tracer, the end-of-exchange hook (telemetry), the filter-failure counters and
the WebSocket counts (open tunnels per route, handshakes by outcome).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edgeward.filters.api import Filter
from edgeward.http.listener import ListenerSettings
from edgeward.http.message import RequestHead
from edgeward.http.stream import HandlerFactory
from edgeward.proxy.forwarded import ForwardedFields
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.trace import Tracer
from edgeward.proxy.upgrade import WebSocketBook

log = logging.getLogger("edgeward.filters")

# A failing filter is logged at most once per this many seconds (it is counted always).
FILTER_LOG_INTERVAL = 10.0


class ExchangeContext(HandlerFactory):
    __slots__ = ("snapshot", "settings", "tracer", "on_done", "on_filter_error",
                 "filter_errors", "_logged", "forwarded", "clock", "websocket")

    def __init__(self, snapshot: Snapshot, settings: ListenerSettings) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.tracer: Tracer | None = None
        self.on_done: Callable[[Any], None] | None = None  # called with each finished exchange
        self.on_filter_error: Callable[[str, str], None] | None = None  # (route, filter)
        # (route, filter) -> failures, for the edgeward_filter_errors_total metric.
        self.filter_errors: dict[tuple[str, str], int] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self.forwarded = ForwardedFields()
        # Governance and latency figures need sub-millisecond time; uvloop's loop.time() is
        # cached per loop iteration in whole milliseconds. Both are CLOCK_MONOTONIC, so
        # deadlines computed from this clock are valid for loop.call_at (at most a millisecond
        # apart). Tests give a fake clock (and a fake loop) instead.
        self.clock: Callable[[], float] = time.monotonic
        # WebSocket handshakes and tunnels of this worker, per route (for limits and metrics).
        self.websocket = WebSocketBook()

    def prepare(self, head: RequestHead) -> None:
        """The gateway's forwarding fields and the client's address, before routing."""
        self.forwarded.add(head, self.settings.forwarded, self.tracer)

    def filter_failed(self, route: str, f: Filter, exc: BaseException) -> None:
        name = f.name or type(f).__name__
        key = (route, name)
        self.filter_errors[key] = self.filter_errors.get(key, 0) + 1
        if self.on_filter_error is not None:
            self.on_filter_error(route, name)
        now = time.monotonic()
        if now - self._logged.get(key, -FILTER_LOG_INTERVAL) >= FILTER_LOG_INTERVAL:
            self._logged[key] = now
            log.error("filter %s on route %s failed (%d so far): %r", name, route,
                      self.filter_errors[key], exc, exc_info=exc)
