"""The exchange end to end: streaming with bounded memory, upstream failures, retries of the
keep-alive race, body limits, timeouts and graceful shutdown — a real gateway process between
a raw-socket client and a real origin.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess, free_port, port_accepts
from support.origin import Origin, pattern_bytes, pattern_sha256
from support.rawhttp import ConnectionClosed, RawConnection, Response, get
from support.sentinel import (
    SENTINEL_ROUTE,
    SENTINEL_UPSTREAM,
    assert_no_connection_opened,
    connections_opened,
    wait_closed,
)

# 1 GiB each way: about 6 s per direction on the 2-core CI machine (benchmarks/
# stream_memory.py prints the figures). EDGEWARD_STREAM_BYTES overrides it.
STREAM_BYTES = int(os.environ.get("EDGEWARD_STREAM_BYTES", 1 << 30))
RSS_LIMIT_KB = 150 * 1024

CONFIG = """\
listen: {listen}
upstreams:
  main: {targets: ["ORIGIN"], response_header_timeout: 500ms}
  patient: {targets: ["ORIGIN"]}
  dead: {targets: ["127.0.0.1:DEAD"], connect_timeout: 1s}
  unpooled: {targets: ["ORIGIN"], max_idle: 0}
SENTINEL_UPSTREAM
routes:
  - {name: dead, match: {host: dead.test}, upstream: dead}
  - {name: limited, match: {host: limited.test}, upstream: unpooled, max_body_size: 1KiB}
SENTINEL_ROUTE
  - {name: short, match: {host: short.test}, upstream: patient, timeout: 300ms}
  - {name: patient, match: {host: patient.test}, upstream: patient, timeout: 5s}
  - {name: stream, match: {host: stream.test}, upstream: patient, timeout: null}
  - {name: main, match: {path_prefix: /}, upstream: main, timeout: null}
"""


def _config(origin: Origin) -> str:
    return (CONFIG.replace("ORIGIN", origin.address).replace("DEAD", str(free_port()))
            .replace("SENTINEL_UPSTREAM\n", SENTINEL_UPSTREAM.format(origin=origin.address))
            .replace("SENTINEL_ROUTE\n", SENTINEL_ROUTE))


@pytest.fixture(scope="module")
def gw(origin: Origin) -> Iterator[GatewayProcess]:
    with GatewayProcess.config(_config(origin)) as g:
        yield g


def assert_error(resp: Response, status: int, code: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    doc = resp.json()
    assert doc["code"] == code, doc
    assert doc["request_id"] == resp.header("x-request-id")


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread; `peak_kb` is the largest seen."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.gw.rss_kb())
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.gw.rss_kb())


# --- streaming ---------------------------------------------------------------------------------
def stream_upload(port: int, n: int) -> Response:
    with RawConnection(port, timeout=60) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: stream.test\r\nContent-Length: %d\r\n\r\n" % n)
        conn.send_all(pattern_bytes(n))
        return conn.read_response()


def stream_download(port: int, n: int) -> tuple[int, str]:
    h = hashlib.sha256()
    count = 0

    def sink(piece: bytes) -> None:
        nonlocal count
        count += len(piece)
        h.update(piece)

    with RawConnection(port, timeout=60) as conn:
        conn.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: stream.test\r\n\r\n" % n)
        resp = conn.read_response(sink=sink)
        assert resp.status == 200
        assert resp.header("content-length") == str(n)
    return count, h.hexdigest()


def test_large_upload_streams_with_bounded_memory(gw: GatewayProcess) -> None:
    with RssSampler(gw) as rss:
        resp = stream_upload(gw.port, STREAM_BYTES)
    assert resp.status == 200
    assert resp.json() == {"length": STREAM_BYTES, "sha256": pattern_sha256(STREAM_BYTES)}
    assert rss.peak_kb < RSS_LIMIT_KB, f"gateway RSS peaked at {rss.peak_kb} KiB"


def test_large_download_streams_with_bounded_memory(gw: GatewayProcess) -> None:
    with RssSampler(gw) as rss:
        count, digest = stream_download(gw.port, STREAM_BYTES)
    assert count == STREAM_BYTES
    assert digest == pattern_sha256(STREAM_BYTES)
    assert rss.peak_kb < RSS_LIMIT_KB, f"gateway RSS peaked at {rss.peak_kb} KiB"


def test_slow_reader_pauses_the_origin_instead_of_buffering(gw: GatewayProcess) -> None:
    """A client that stops reading: the gateway's memory must not absorb the response."""
    n = 64 * 1024 * 1024
    with RawConnection(gw.port, timeout=30) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: stream.test\r\n\r\n" % n)
        base = gw.rss_kb()
        time.sleep(1.0)  # the origin could push all 64 MiB in this time if nothing paused it
        grown = gw.rss_kb() - base
        assert grown < 16 * 1024, f"gateway RSS grew {grown} KiB while the client slept"
        resp = conn.read_response(sink=lambda piece: None)
        assert resp.status == 200


def test_response_streaming_longer_than_response_header_timeout(gw: GatewayProcess) -> None:
    """response_header_timeout bounds the wait for the head, not the body that follows."""
    with RawConnection(gw.port, timeout=10) as conn:
        conn.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: gw.test\r\n\r\n" % (8 << 20))
        head = conn.read_head()
        assert head.status == 200
        time.sleep(1.0)  # twice the main upstream's response_header_timeout
        conn._stream(8 << 20, lambda piece: None)


def test_upload_slower_than_response_header_timeout(gw: GatewayProcess) -> None:
    with RawConnection(gw.port, timeout=10) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 400\r\n\r\n")
        for _ in range(4):
            time.sleep(0.3)
            conn.send(b"u" * 100)
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.json()["length"] == 400


# --- upstream failures ---------------------------------------------------------------------------
def test_connect_refused_is_502_upstream_connect_failed(gw: GatewayProcess) -> None:
    assert_error(get(gw.port, "/echo", host="dead.test"), 502, "upstream_connect_failed")


def test_slow_origin_beyond_response_header_timeout_is_504(gw: GatewayProcess) -> None:
    started = time.monotonic()
    resp = get(gw.port, "/slow?ms=1500")
    took = time.monotonic() - started
    assert_error(resp, 504, "upstream_timeout")
    assert 0.4 <= took < 1.4, f"response_header_timeout is 500ms, 504 came after {took:.2f}s"


def test_route_timeout_is_504(gw: GatewayProcess) -> None:
    started = time.monotonic()
    resp = get(gw.port, "/slow?ms=2000", host="short.test")
    took = time.monotonic() - started
    assert_error(resp, 504, "upstream_timeout")
    assert took < 1.5, f"route timeout is 300ms, 504 came after {took:.2f}s"


def test_truncated_origin_response_aborts_the_client_connection(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /truncate HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        head = conn.read_head()
        assert head.status == 200
        assert head.header("content-length") == "100"
        with pytest.raises(ConnectionClosed):
            conn._stream(100, lambda piece: None)


def test_origin_closing_after_connection_close_response(gw: GatewayProcess) -> None:
    for _ in range(3):
        resp = get(gw.port, "/close")
        assert resp.status == 200
        assert resp.json()["target"] == "/close"


def test_keep_alive_race_idempotent_request_is_resent_once(
        gw: GatewayProcess, origin: Origin) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /close-quietly HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert conn.read_response().status == 200
        before = origin.mark()
        # The gateway reuses the pooled connection; the origin reads the request and resets.
        conn.send(b"GET /echo?race=get HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.json()["target"] == "/echo?race=get"
    seen = [r for r in origin.requests_since(before) if r.target == "/echo?race=get"]
    assert len(seen) == 2, "sent on the dying connection, then exactly once more"
    assert seen[0].conn_id != seen[1].conn_id


def test_keep_alive_race_post_is_not_resent(gw: GatewayProcess, origin: Origin) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /close-quietly HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert conn.read_response().status == 200
        before = origin.mark()
        conn.send(b"POST /echo?race=post HTTP/1.1\r\nHost: gw.test\r\n"
                  b"Content-Length: 4\r\n\r\nbody")
        resp = conn.read_response()
    assert_error(resp, 502, "upstream_reset")
    # A resend goes on a new connection, opened before the 502 (support/sentinel.py).
    seen = assert_no_connection_opened(gw.port, origin, before)
    assert seen.count("/echo?race=post") == 1, seen


def test_origin_closing_idle_connection_is_not_noticed_by_clients(
        gw: GatewayProcess, origin: Origin) -> None:
    """The origin closes right after answering (no Connection: close): the next request
    still succeeds, on a new upstream connection, and is sent exactly once."""
    assert get(gw.port, "/close-quietly?when=now").status == 200
    time.sleep(0.1)
    before = origin.mark()
    resp = get(gw.port, "/echo?after=quiet-close")
    assert resp.status == 200
    assert origin.path_counts(before)["/echo"] == 1


# --- body limits ---------------------------------------------------------------------------------
def test_content_length_over_max_body_size_is_413(gw: GatewayProcess, origin: Origin) -> None:
    before = origin.mark()
    with RawConnection(gw.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: limited.test\r\nContent-Length: 2048\r\n\r\n"
                  + b"x" * 2048)
        resp = conn.read_response()
        assert_error(resp, 413, "payload_too_large")
        assert conn.is_closed()
    # The route's upstream keeps no idle connection: a body refused up front opened none.
    seen = assert_no_connection_opened(gw.port, origin, before)
    assert len(seen) == 1, ("a body refused up front reached the origin", seen)


def test_chunked_body_over_max_body_size_is_413(gw: GatewayProcess, origin: Origin) -> None:
    before = origin.mark()
    chunk = b"%x\r\n%b\r\n" % (600, b"y" * 600)
    with RawConnection(gw.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: limited.test\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk)
        upstream = wait_for_request(origin, before, "/upload")  # the head went upstream
        try:
            conn.send(chunk + chunk + b"0\r\n\r\n")
        except OSError:
            pass  # the gateway may already have closed after its 413
        resp = conn.read_response()
        assert_error(resp, 413, "payload_too_large")
        assert conn.is_closed()
    # The gateway aborts that upstream connection; once the origin has seen it end, what it
    # received there is final.
    received = wait_closed(origin, upstream)
    body = received[received.find(b"\r\n\r\n") + 4:]
    assert len(body) < 1024 + 512, "bytes beyond max_body_size reached the origin"


def test_pipelined_chunked_body_over_max_body_size_is_413(
        gw: GatewayProcess, origin: Origin) -> None:
    """A body read while the request before it is answered passes the route's body limit too."""
    before = origin.mark()
    chunk = b"%x\r\n%b\r\n" % (2000, b"z" * 2000)
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /slow?ms=200 HTTP/1.1\r\nHost: limited.test\r\n\r\n"
                  b"POST /upload HTTP/1.1\r\nHost: limited.test\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n")
        assert conn.read_response().status == 200
        assert_error(conn.read_response(), 413, "payload_too_large")
    # The route's upstream keeps no idle connection: the POST would have needed its own.
    opened, targets = connections_opened(gw.port, origin, before)
    assert len(opened) == 1 and targets[0] == "/slow?ms=200", (opened, targets)
    assert "/upload" not in targets


def wait_for_request(origin: Origin, before: tuple[int, int, int], target: str,
                     timeout: float = 10.0) -> int:
    """The origin connection that carried the first request for `target` since the mark,
    once the origin has read its head (the timeout only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r.conn_id for r in origin.requests_since(before) if r.target == target]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{target} never reached the origin"
        time.sleep(0.01)


def test_body_within_max_body_size_passes(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/upload", method="POST", body=b"z" * 1024, host="limited.test")
    assert resp.status == 200
    assert resp.json()["length"] == 1024


# --- shutdown ------------------------------------------------------------------------------------
def test_sigterm_drains_in_flight_request_then_exits_zero(origin: Origin) -> None:
    gw = GatewayProcess.config(_config(origin)).start()
    try:
        before = origin.mark()
        with RawConnection(gw.port, timeout=10) as conn:
            conn.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: patient.test\r\n\r\n")
            wait_for_request(origin, before, "/slow?ms=1500")  # in flight at the origin
            os.kill(gw.pid, signal.SIGTERM)
            refused_while_answering(gw.port, conn.sock)
            resp = conn.read_response()
        assert resp.status == 200, (resp.status, resp.body)
        assert resp.json()["target"] == "/slow?ms=1500"
        assert resp.header("connection") == "close"
        assert gw.wait(10) == 0
    finally:
        gw.stop()


def refused_while_answering(port: int, answering: socket.socket, timeout: float = 10.0) -> None:
    """New connections are refused while the answer on `answering` is still to come (nothing
    of it has arrived when the refusal is seen): a draining gateway, not a stopped one. The
    timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while port_accepts(port):
        assert time.monotonic() < deadline, "a draining gateway must refuse new connections"
        time.sleep(0.01)
    readable, _, _ = select.select([answering], [], [], 0)
    assert not readable, "the gateway answered before it refused new connections"
