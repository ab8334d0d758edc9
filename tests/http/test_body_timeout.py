"""server.body_timeout: each wait for more of a request body is bounded, the whole upload is not.

A stalled client gets 408 `request_timeout`; a slow but steady one is served; an upstream that
stops reading the body gets the same bound and the client a 504 `upstream_timeout`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import RawConnection
from support.scripted import ScriptedOrigin

CONFIG = """\
listen: {listen}
server: {body_timeout: 2s}
upstreams:
  main: {targets: ["MAIN"]}
  deaf: {targets: ["DEAF"]}
routes:
  - {name: deaf, match: {path_prefix: /deaf}, upstream: deaf}
  - {name: main, match: {path_prefix: /}, upstream: main}
"""


@pytest.fixture(scope="module")
def deaf() -> Iterator[ScriptedOrigin]:
    d = ScriptedOrigin(deaf=True)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def gw(origin: Origin, deaf: ScriptedOrigin) -> Iterator[GatewayProcess]:
    text = CONFIG.replace("MAIN", origin.address).replace("DEAF", deaf.address)
    with GatewayProcess.config(text) as g:
        yield g


def test_a_stalled_body_is_a_408_and_the_connection_closes(gw: GatewayProcess) -> None:
    with RawConnection(gw.port, timeout=10) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        resp = conn.read_response()
        waited = time.monotonic() - started
        assert resp.status == 408, resp
        assert resp.json()["code"] == "request_timeout"
        assert 1.8 < waited < 8, waited
        assert conn.is_closed()


def test_a_slow_steady_body_is_not_cut(gw: GatewayProcess) -> None:
    body = b"abcdef"
    with RawConnection(gw.port, timeout=10) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(len(body)):  # 6 x 0.5 s: longer than body_timeout in all, never a gap
            time.sleep(0.5)
            conn.send(body[i:i + 1])
        resp = conn.read_response()
    assert resp.status == 200, resp
    assert resp.json()["length"] == len(body)


def test_an_upstream_that_stops_reading_the_body_is_a_504(gw: GatewayProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    total = 64 * 1024 * 1024
    sock.sendall(b"POST /deaf HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
    stop = threading.Event()

    def push() -> None:
        chunk = b"x" * 65536
        sent = 0
        sock.settimeout(0.2)
        while sent < total and not stop.is_set():
            try:
                sent += sock.send(chunk)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return

    reader = sock.dup()  # its own timeout; the pusher's socket keeps a short one
    reader.settimeout(1)
    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        data = b""
        deadline = time.monotonic() + 15
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            try:
                piece = reader.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not piece:
                break
            data += piece
    finally:
        stop.set()
        pusher.join(5)
        reader.close()
        sock.close()
    assert data.startswith(b"HTTP/1.1 504 "), data[:200]
    assert b'"upstream_timeout"' in data
