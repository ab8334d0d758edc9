"""`mirror`: a copy of a share of the route's requests to another upstream (a shadow), for
testing a new version on real traffic (Envoy request_mirror_policies, nginx `mirror`).

Fire and forget: the copy is sent from a task of its own, after the request (and its body, up
to `max_body`) has gone through the route's other filters; the primary request never waits
for it, and nothing the shadow does (slow, failing, unreachable) changes the primary's
response. A copy carries the marker header (`x-edgeward-mirror: 1` by default) so the shadow
and its logs can tell copies apart, and has its own `timeout`. At most `max_in_flight` copies
per worker are under way; more are dropped, not queued. Each copy's fate is counted in
`edgeward_mirror_requests_total{route,upstream,result}`: ok (answered, any status), error
(no answer in time, connection failed or reset, breaker open), dropped (too many in flight),
too_large (the body was over max_body: not copied).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final

from edgeward.filters.api import ORDER_MIRROR, Filter, Reply, Request, RequestResult
from edgeward.filters.events import MIRROR, FilterEvents
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, STREAMED, RequestHead

log = logging.getLogger("edgeward.filters.mirror")

_SLOT: Final = "mirror:body"

# edgeward.proxy.subrequest.fetch, handed over by the composition root (filters/ does not
# import the proxy): fetch(cluster, head, body, timeout=..., keep_body=False).
Fetch = Callable[..., Awaitable[object]]


class Mirror(Filter):
    order: ClassVar[int] = ORDER_MIRROR

    def __init__(self, *, cluster: Any, fetch: Fetch, upstream: str, percent: float,
                 timeout: float,
                 max_body: int, max_in_flight: int, marker: str, rng: random.Random,
                 events: FilterEvents) -> None:
        self.name = "mirror"
        self.cluster = cluster
        self.fetch = fetch
        self.upstream = upstream
        self.fraction = percent / 100.0
        self.timeout = timeout
        self.max_body = max_body
        self.max_in_flight = max_in_flight
        self.marker = marker.encode("ascii")
        self.rng = rng
        self.events = events
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()  # strong references until each ends

    def on_request(self, req: Request) -> RequestResult:
        if self.fraction < 1.0 and not self.rng.random() < self.fraction:
            return None
        length = req.body_length
        if length == NO_BODY:
            self._send(req, b"")
        elif length != STREAMED and length > self.max_body:
            self.events.count(MIRROR, req.route_name, self.upstream, "too_large")
        else:
            req.vars[_SLOT] = _Body()
        return None

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        vars_ = req.vars
        body = vars_.get(_SLOT)
        if isinstance(body, _Body):
            body.size += len(data)
            if body.size > self.max_body:
                del vars_[_SLOT]
                self.events.count(MIRROR, req.route_name, self.upstream, "too_large")
            else:
                if data:
                    body.parts.append(data)
                if end:
                    del vars_[_SLOT]
                    self._send(req, b"".join(body.parts))
        return data

    def _send(self, req: Request, body: bytes) -> None:
        if self.in_flight >= self.max_in_flight:
            self.events.count(MIRROR, req.route_name, self.upstream, "dropped")
            return
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(
            self._copy(self.copy_head(req, body), body, req.route_name))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def copy_head(self, req: Request, body: bytes) -> RequestHead:
        headers = Headers(list(req.headers.fields))
        headers.remove(self.marker.decode())
        headers.append(self.marker, b"1")
        head = RequestHead(req.method, req.target, req.path, req.host, req.authority, headers,
                           len(body) if body else NO_BODY, req.client_ip, req.request_id,
                           req.scheme)
        return head

    async def _copy(self, head: RequestHead, body: bytes, route: str) -> None:
        result = "error"
        try:
            await asyncio.wait_for(
                self.fetch(self.cluster, head, body, timeout=self.timeout, keep_body=False),
                self.timeout)
            result = "ok"
        except Exception as exc:  # noqa: BLE001 - a shadow's failure never reaches the primary
            # SubrequestError (no answer, breaker open) or the timeout: expected, not logged
            # above debug; anything else is a bug worth a warning.
            expected = isinstance(exc, TimeoutError) or hasattr(exc, "code")
            log.log(logging.DEBUG if expected else logging.WARNING,
                    "mirror to %s failed: %r", self.upstream, exc)
        finally:
            self.in_flight -= 1
            self.events.count(MIRROR, route, self.upstream, result)


class _Body:
    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
