"""Upstream HTTP/2 end to end: HTTP/1.1 clients through a real gateway to scripted ngh2
origins (h2c prior knowledge): streams multiplexed on one connection, the peer's max
concurrent streams respected with more connections opened, GOAWAY (the unprocessed stream sent
again on a new connection, whatever its method), flow control with backpressure both ways,
trailers. One gateway, three origins."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from tests.observability.obskit import wait_until

from support.gateway import GatewayProcess
from support.h2_origin import MIB, H2Origin
from support.rawhttp import RawConnection, Response, get

CONFIG = """
listen: {listen}
upstreams:
  plain: {targets: [%(plain)s], protocol: h2}
  narrow: {targets: [%(narrow)s], protocol: h2}
  leaving: {targets: [%(leaving)s], protocol: h2}
routes:
  - match: {host: narrow.test}
    upstream: narrow
  - match: {host: leaving.test}
    upstream: leaving
  - match: {}
    upstream: plain
"""


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, H2Origin]]:
    with H2Origin() as plain, H2Origin(max_streams=2) as narrow, \
            H2Origin(goaway_on=3) as leaving:
        yield {"plain": plain, "narrow": narrow, "leaving": leaving}


@pytest.fixture(scope="module")
def gw(origins: dict[str, H2Origin]) -> Iterator[GatewayProcess]:
    text = CONFIG % {k: o.address for k, o in origins.items()}
    with GatewayProcess.config(text) as g:
        yield g


def test_body_and_trailers_relayed(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/hello?x=1", method="POST", body=b"payload")
    assert resp.status == 200
    assert resp.body == b"/hello?x=1 payload"
    assert resp.header("transfer-encoding") == "chunked"
    assert ("x-trailer", "yes") in resp.trailers


def test_requests_share_one_connection(gw: GatewayProcess, origins: dict[str, H2Origin]
                                       ) -> None:
    get(gw.port, "/warm")
    before = origins["plain"].connections
    with RawConnection(gw.port) as conn:
        for i in range(20):
            conn.send(b"GET /n%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % i)
            assert conn.final_response()[1].body == b"/n%d " % i
    assert origins["plain"].connections == before


def _held_request(port: int, results: list[Response]) -> None:
    with RawConnection(port, 20) as conn:
        conn.send(b"GET /hold HTTP/1.1\r\nHost: narrow.test\r\n\r\n")
        results.append(conn.final_response()[1])


def test_max_concurrent_streams_respected(gw: GatewayProcess, origins: dict[str, H2Origin]
                                          ) -> None:
    narrow = origins["narrow"]
    results: list[Response] = []
    threads = [threading.Thread(target=_held_request, args=(gw.port, results))
               for _ in range(5)]
    for t in threads:
        t.start()
    wait_until(lambda: len(narrow.held) == 5, what="five requests held at the origin")
    assert narrow.connections == 3  # 2 + 2 + 1 streams: the peer's limit of 2 respected
    narrow.release()
    for t in threads:
        t.join(20)
    assert sorted(r.status for r in results) == [200] * 5


def test_reset_streams_give_their_slots_back(gw: GatewayProcess,
                                             origins: dict[str, H2Origin]) -> None:
    narrow = origins["narrow"]  # 2 streams per connection
    get(gw.port, "/warm", host="narrow.test")
    before = narrow.connections
    for _ in range(4):
        resp = get(gw.port, "/reset", host="narrow.test")
        assert resp.status == 502
        assert resp.json()["code"] == "upstream_reset"
    assert get(gw.port, "/after", host="narrow.test").status == 200
    assert narrow.connections == before  # a leaked slot would have filled the connection


def test_goaway_unprocessed_stream_goes_again_on_a_new_connection(
        gw: GatewayProcess, origins: dict[str, H2Origin]) -> None:
    leaving = origins["leaving"]
    with RawConnection(gw.port) as conn:
        for i in (1, 2, 3):
            body = b"call %d" % i
            conn.send(b"POST /p%d HTTP/1.1\r\nHost: leaving.test\r\nContent-Length: %d\r\n\r\n%b"
                      % (i, len(body), body))
            resp = conn.final_response()[1]
            assert resp.status == 200
            assert resp.body == b"/p%d call %d" % (i, i)
    assert resp.header("x-conn") == "2"  # the third went to a second connection
    assert leaving.paths == ["/p1", "/p2", "/p3"]  # each processed once
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /after HTTP/1.1\r\nHost: leaving.test\r\n\r\n")
        assert conn.final_response()[1].header("x-conn") == "2"


def _settled(probe: callable, what: str) -> int:  # type: ignore[valid-type]
    """The value of `probe()` once it stopped changing for 0.3 s."""
    last, since = -1, time.monotonic()
    deadline = since + 15
    while time.monotonic() < deadline:
        now_value = probe()
        if now_value != last:
            last, since = now_value, time.monotonic()
        elif time.monotonic() - since > 0.3:
            return int(last)
        time.sleep(0.02)
    raise AssertionError(f"{what} never settled")


def test_slow_client_stops_the_upstream(gw: GatewayProcess, origins: dict[str, H2Origin]
                                        ) -> None:
    plain = origins["plain"]
    total = 48 * MIB
    with RawConnection(gw.port, 30) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(b"GET /big/48 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        wait_until(lambda: plain.big is not None, what="the big response started")
        sent = _settled(lambda: plain.big_sent, "the origin's progress")
        assert sent < total // 2  # held back by the windows the gateway did not give back
        resp = conn.final_response()[1]
    assert len(resp.body) == total


def test_slow_upstream_stops_the_client(gw: GatewayProcess, origins: dict[str, H2Origin]
                                        ) -> None:
    total = 24 * MIB
    chunk = b"u" * 65536
    sent = 0
    with RawConnection(gw.port, 1.0) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        conn.send(b"POST /slow-read HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                  % total)
        try:
            while sent < total:
                sent += conn.sock.send(chunk[: min(len(chunk), total - sent)])
        except TimeoutError:
            pass
        assert sent < total // 2  # the gateway stopped reading: the origin took nothing
        origins["plain"].let_read()
        conn.sock.settimeout(30)
        while sent < total:
            sent += conn.sock.send(chunk[: min(len(chunk), total - sent)])
        resp = conn.final_response()[1]
    assert resp.status == 200
    assert len(resp.body) == len(b"/slow-read ") + total
