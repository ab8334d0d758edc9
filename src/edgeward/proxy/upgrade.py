"""WebSocket handshakes in the exchange: refuse early, admit against the route's tunnel limit,
switch on the upstream's 101, and count how each handshake ended.

The order for a request with `Upgrade: websocket`:
  route match → the route allows WebSocket (`websocket:`), else 400 websocket_not_allowed →
  the handshake is valid (400 websocket_bad_handshake; 426 websocket_version_unsupported with
  `Sec-WebSocket-Version: 13`) → the route's filters (auth, rate limits, ...) → a tunnel slot
  on the route (503 websocket_limit) → split, balancer, breaker admission, upstream →
  101 with the right Sec-WebSocket-Accept → tunnel (`edgeward.http.tunnel`);
  any other answer is relayed as a normal response and the connection closes after it.

`WebSocketBook` keeps one worker's counts for the metrics (copied into the metric families when
they are read), for the worker's life: a reload does not reset the open-tunnel count a limit
is checked against.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from edgeward.http.message import RequestHead, ResponseHead
from edgeward.http.stream import ClientStream
from edgeward.http.tunnel import TunnelStats
from edgeward.http.ws_handshake import Refusal, accept_matches, request_problem

if TYPE_CHECKING:
    from edgeward.proxy.route import Route

# Outcomes of a handshake (the `outcome` label of edgeward_websocket_upgrades_total).
UPGRADED: Final = "upgraded"                # 101: a tunnel was opened
REFUSED: Final = "refused"                  # the gateway answered (handshake, route, filters)
UPSTREAM_REFUSED: Final = "upstream_refused"  # the upstream answered other than 101 (relayed)
FAILED: Final = "failed"                    # no answer from the upstream, or a bad 101
# Gateway error codes that mean the upstream side failed, not that the gateway refused.
_UPSTREAM_FAILURES: Final = frozenset({
    "upstream_connect_failed", "upstream_reset", "bad_gateway", "upstream_timeout",
    "client_closed"})

_NOT_ALLOWED: Final = Refusal("websocket_not_allowed",
                              "this route does not accept WebSocket upgrades", None)
_BAD_ACCEPT: Final = Refusal("bad_gateway",
                             "the upstream's 101 has no valid Sec-WebSocket-Accept", None)
_GONE: Final = Refusal("upstream_reset", "the upstream closed as it switched", None)


class WebSocketBook:
    """One worker's WebSocket counts: per route, its tunnels; per (route, outcome), its
    handshakes."""

    __slots__ = ("routes", "upgrades")

    def __init__(self) -> None:
        self.routes: dict[str, TunnelStats] = {}
        self.upgrades: dict[tuple[str, str], int] = {}

    def route(self, name: str) -> TunnelStats:
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = TunnelStats(name)
        return stats

    def count(self, route: str, outcome: str) -> None:
        key = (route, outcome)
        self.upgrades[key] = self.upgrades.get(key, 0) + 1

    def open_tunnels(self) -> int:
        return sum(s.open for s in self.routes.values())

    def __repr__(self) -> str:
        return f"<WebSocketBook routes={len(self.routes)} open={self.open_tunnels()}>"


def refusal(route: Route, head: RequestHead) -> Refusal | None:
    """Why the route refuses this handshake before any filter runs, or None."""
    if route.websocket is None:
        return _NOT_ALLOWED
    return request_problem(head)


def reserve(book: WebSocketBook, route: Route) -> TunnelStats | None:
    """One of the route's tunnel slots for a handshake (given back if it does not become a
    tunnel); None when the route's max_tunnels are all taken."""
    settings = route.websocket
    if settings is None:
        return None
    stats = book.route(route.name)
    limit = settings.max_tunnels
    if limit is not None and stats.open >= limit:
        return None
    stats.open += 1
    return stats


def take_over(head: RequestHead, resp: ResponseHead,
              conn: ClientStream) -> tuple[asyncio.Transport, bytes] | Refusal:
    """The upstream connection's transport and the bytes after its 101, for the tunnel; or,
    when the 101 does not answer the handshake's key (§4.1: the client would have to fail the
    connection), the refusal, with the connection aborted."""
    key = head.headers.get("sec-websocket-key") or ""
    if not accept_matches(key, resp.headers.get_all("sec-websocket-accept")):
        conn.abort()
        return _BAD_ACCEPT
    detached = conn.detach()
    if detached is None:
        conn.abort()
        return _GONE
    return detached


def handshake_done(book: WebSocketBook, route: str, reserved: TunnelStats | None, status: int,
                   attempted: bool, error_code: str | None) -> None:
    """A handshake's exchange ended: its slot back if it holds one (no tunnel came of it),
    and its outcome counted."""
    if reserved is not None:
        reserved.open -= 1
    book.count(route, outcome(status, attempted, error_code))


def outcome(status: int, attempted: bool, error_code: str | None) -> str:
    """How a finished handshake exchange ended: its status, whether an upstream was tried,
    the gateway's error code if it answered itself."""
    if status == 101:
        return UPGRADED
    if not attempted:
        return REFUSED  # answered before any upstream was tried
    if error_code is None:
        return UPSTREAM_REFUSED
    return FAILED if error_code in _UPSTREAM_FAILURES else REFUSED
