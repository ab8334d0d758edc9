"""Proof that an origin received nothing of a request, without sleeping on it.

A fixed sleep ("anything forwarded would have arrived by now") passes by accident on a slow
machine. Instead, after the request under test (the vector) was answered, a *sentinel* request
goes through the same gateway on a fresh connection, to an upstream that keeps no idle
connections (`max_idle: 0`), so the gateway opens a new upstream connection for it. The
gateway is one event loop: whatever it did for the vector, it did before it read the
sentinel, so any upstream connection it opened for the vector was opened before the
sentinel's, and the origin's one accept thread takes connections in the order the kernel
queued them. Once the sentinel's answer is back, the connections the origin accepted since
the mark are final up to the sentinel's: if that list is the sentinel's connection alone,
the gateway opened no connection for the vector.

That proves "nothing forwarded" when the vector could only have been forwarded on a new
connection: the gateway holds no idle connection to the origin (its upstreams keep none, or
it never forwarded anything else). `wait_closed` covers the other case: the connection a
vector used is final once the origin has seen it close.

    SENTINEL_UPSTREAM.format(origin=origin.address)   # into `upstreams:`
    SENTINEL_ROUTE                                    # into `routes:`, before catch-alls
"""

from __future__ import annotations

import itertools
import time

from support.origin import Origin
from support.rawhttp import get

SENTINEL_HOST = "sentinel.test"
SENTINEL_UPSTREAM = '  sentinel: {{targets: ["{origin}"], max_idle: 0}}\n'
SENTINEL_ROUTE = "  - {name: sentinel, match: {host: sentinel.test}, upstream: sentinel}\n"
_numbers = itertools.count(1)


def send_sentinel(port: int, origin: Origin) -> int:
    """Send a sentinel through the gateway on `port`; returns the origin connection that
    carried it (the origin has read it: its answer came back)."""
    target = f"/sentinel/{next(_numbers)}"
    resp = get(port, target, host=SENTINEL_HOST)
    assert resp.status == 200, resp
    with origin.lock:
        ids = [r.conn_id for r in origin.requests if r.target == target]
    assert len(ids) == 1, ids
    return ids[0]


def connections_opened(port: int, origin: Origin, before: tuple[int, int, int]
                       ) -> tuple[list[int], list[str]]:
    """The origin connections the gateway opened since the mark `before`, up to the
    sentinel's (excluded): final once the sentinel is back (see the module docstring); and
    the targets the origin read since the mark, the sentinel's included."""
    sentinel_conn = send_sentinel(port, origin)
    with origin.lock:
        accepted = [c.conn_id for c in origin.connections[before[0]:]]
        targets = [r.target for r in origin.requests[before[1]:]]
    return accepted[:accepted.index(sentinel_conn)], targets


def assert_no_connection_opened(port: int, origin: Origin, before: tuple[int, int, int]
                                ) -> list[str]:
    """Since the mark `before`, the gateway opened no upstream connection to `origin` but the
    sentinel's. Returns the targets the origin read since the mark, the sentinel's included."""
    opened, targets = connections_opened(port, origin, before)
    assert opened == [], ("the gateway opened an upstream connection before the sentinel's",
                          opened, targets)
    return targets


def wait_closed(origin: Origin, conn_id: int, timeout: float = 10.0) -> bytes:
    """Wait until the origin's connection `conn_id` has ended (nothing more can arrive on it)
    and return all it received. The timeout only bounds a failure: never a pass."""
    deadline = time.monotonic() + timeout
    while True:
        with origin.lock:
            record = origin.connections[conn_id]
            if record.closed:
                return bytes(record.raw)
        assert time.monotonic() < deadline, f"origin connection {conn_id} never ended"
        time.sleep(0.01)
