"""Issue 18, finding 1: a client's stalled upload must not count against the upstream.

Before: six parallel POSTs announcing `Content-Length: 1000` and sending 7 bytes, on a route
with `timeout: 3s` and a breaker (`failure_rate: 0.5, min_requests: 5`), all got 504
`upstream_timeout`; the breaker opened and an honest GET then got 503 `circuit_open`. Now a
deadline that fires while the request body is incomplete is the client's: 408
`request_timeout`, and no outcome is recorded against the endpoint (the route timeout starts
when the request has been received whole, as Envoy's does, so here the 4 s body timeout ends
the stalled uploads, not the 2 s route timeout).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import RawConnection, get

CONFIG = """\
listen: {listen}
server: {body_timeout: 4s}
upstreams:
  app:
    targets: ["ORIGIN"]
    circuit_breaker: {failure_rate: 0.5, min_requests: 5, window: 30s, open_for: 30s}
routes:
  - {name: upload, match: {path_prefix: /}, upstream: app, timeout: 2s}
"""


@pytest.fixture(scope="module")
def gw(origin: Origin) -> Iterator[GatewayProcess]:
    with GatewayProcess.config(CONFIG.replace("ORIGIN", origin.address)) as g:
        yield g


def _stalled_post(port: int, results: list[tuple[int, str]]) -> None:
    with RawConnection(port, timeout=15) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: 1000\r\n\r\n"
                  b"7 bytes")
        _, resp = conn.final_response()
        results.append((resp.status, resp.json()["code"]))


def test_stalled_uploads_get_408_and_leave_the_breaker_closed(gw: GatewayProcess) -> None:
    results: list[tuple[int, str]] = []
    threads = [threading.Thread(target=_stalled_post, args=(gw.port, results))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(408, "request_timeout")] * 6
    # The breaker saw nothing of them: an honest request is forwarded.
    resp = get(gw.port, "/echo")
    assert resp.status == 200, resp.body
