"""The HTTP/1.1 listener end to end: raw bytes from a socket, a real gateway process, a real origin.

Refused requests: the client gets the documented status and JSON code, the connection closes,
and the origin receives nothing of the request. Accepted requests: framing, keep-alive,
pipelining, header rewriting and request ids as a client and an origin would notice them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import RawConnection, Response, exchange, get
from support.sentinel import (
    SENTINEL_ROUTE,
    SENTINEL_UPSTREAM,
    assert_no_connection_opened,
    wait_closed,
)
from support.vectors import REFUSED, H, assert_gateway_error

CONFIG = """\
listen: {listen}
server: {header_timeout: 1s, max_request_line: 4KiB, max_header_bytes: 16KiB%s}
upstreams:
  main: {targets: ["MAIN"]}
  alt: {targets: ["ALT"]}
  single: {targets: ["MAIN"], max_idle: 1}
SENTINEL_UPSTREAM
routes:
  - {name: alt, match: {host: alt.test}, upstream: alt}
  - {name: main, match: {host: gw.test}, upstream: main}
  - {name: single, match: {host: single.test}, upstream: single}
SENTINEL_ROUTE
"""

GENERATED_ID = re.compile(r"^[0-9a-f]{16}-[0-9]+$")


def _config(main: Origin, alt: Origin, extra: str = "") -> str:
    return ((CONFIG % extra).replace("MAIN", main.address).replace("ALT", alt.address)
            .replace("SENTINEL_UPSTREAM\n", SENTINEL_UPSTREAM.format(origin=main.address))
            .replace("SENTINEL_ROUTE\n", SENTINEL_ROUTE))


@pytest.fixture(scope="module")
def alt_origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def gw(origin: Origin, alt_origin: Origin) -> Iterator[GatewayProcess]:
    with GatewayProcess.config(_config(origin, alt_origin)) as g:
        yield g


@pytest.fixture(scope="module")
def refusing_gw(origin: Origin, alt_origin: Origin) -> Iterator[GatewayProcess]:
    """A gateway that only ever sees refused requests and sentinels (whose upstream keeps no
    idle connection): it never holds an idle upstream connection, so a request it forwarded
    would need a connection of its own, opened before the sentinel's (support/sentinel.py)."""
    with GatewayProcess.config(_config(origin, alt_origin)) as g:
        yield g


@pytest.fixture(scope="module")
def trusting_gw(origin: Origin, alt_origin: Origin) -> Iterator[GatewayProcess]:
    with GatewayProcess.config(
            _config(origin, alt_origin, ", trusted_proxies: [127.0.0.0/8]")) as g:
        yield g


def refused(gw: GatewayProcess, origin: Origin, raw: bytes, status: int, code: str,
            *, wait: float = 5.0) -> dict[str, str]:
    before = origin.mark()
    with RawConnection(gw.port, timeout=wait) as conn:
        conn.send(raw)
        _, resp = conn.final_response()
        doc = assert_gateway_error(resp, status, code)
        assert resp.header("connection") == "close"
        assert conn.is_closed(), "the gateway must close after refusing a request"
    targets = assert_no_connection_opened(gw.port, origin, before)
    assert len(targets) == 1, ("the origin received a refused request", targets)
    return doc


# --- refused framing -----------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "status", "code"), [v[1:4] for v in REFUSED],
                         ids=[v.name for v in REFUSED])
def test_refused_framing(refusing_gw: GatewayProcess, origin: Origin, raw: bytes, status: int,
                         code: str) -> None:
    refused(refusing_gw, origin, raw, status, code)


def test_request_line_too_long_is_414(refusing_gw: GatewayProcess, origin: Origin) -> None:
    raw = b"GET /echo?" + b"a" * 5000 + b" HTTP/1.1\r\n" + H + b"\r\n"
    refused(refusing_gw, origin, raw, 414, "uri_too_long")


def test_headers_too_large_is_431(refusing_gw: GatewayProcess, origin: Origin) -> None:
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    raw = b"GET /echo HTTP/1.1\r\n" + H + fields + b"\r\n"
    refused(refusing_gw, origin, raw, 431, "header_too_large")


def test_slow_request_head_is_408_after_header_timeout(
        refusing_gw: GatewayProcess, origin: Origin) -> None:
    before = origin.mark()
    with RawConnection(refusing_gw.port) as conn:
        started = time.monotonic()
        conn.send(b"GET /echo HTTP/1.1\r\n" + H)  # the blank line never comes
        _, resp = conn.final_response()
        waited = time.monotonic() - started
        assert_gateway_error(resp, 408, "request_timeout")
        assert conn.is_closed()
    assert 0.8 <= waited < 3.0, f"header_timeout is 1s, the 408 came after {waited:.2f}s"
    assert len(assert_no_connection_opened(refusing_gw.port, origin, before)) == 1


def test_silent_connection_is_closed_after_header_timeout(refusing_gw: GatewayProcess) -> None:
    with RawConnection(refusing_gw.port) as conn:
        assert conn.is_closed(wait=3.0)


def test_malformed_chunked_body_does_not_leak_body_to_origin(
        gw: GatewayProcess, origin: Origin) -> None:
    """On an upstream connection the gateway had pooled (the head may already be on its way
    when the body turns out malformed), no byte of the malformed body reaches the origin.

    The `single` upstream keeps one idle connection: the request takes it, so the gateway must
    abort it; once the origin has seen that connection end, what it received there is final
    (the exact bytes the gateway writes are checked without sockets in
    tests/http/h1/test_server_unit.py)."""
    assert get(gw.port, "/echo", host="single.test").status == 200  # leaves it pooled
    with origin.lock:
        [pooled] = [r.conn_id for r in origin.requests if r.header("host") == ["single.test"]
                    and not origin.connections[r.conn_id].closed]
    raw = (b"POST /upload HTTP/1.1\r\nHost: single.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nSECRETxx0\r\n\r\n")
    with RawConnection(gw.port) as conn:
        conn.send(raw)
        _, resp = conn.final_response()
        assert_gateway_error(resp, 400, "bad_request")
        assert conn.is_closed()
    seen = wait_closed(origin, pooled)
    assert b"SECRE" not in seen  # the chunk's data: 5 bytes, then no CRLF
    assert seen.count(b"POST /upload") <= 1
    assert get(gw.port, "/echo").status == 200  # the gateway still serves


# --- routing -------------------------------------------------------------------------------------
def test_unknown_route_is_404_route_not_found(gw: GatewayProcess, origin: Origin) -> None:
    before = origin.mark()
    resp = get(gw.port, "/echo", host="nowhere.test")
    assert_gateway_error(resp, 404, "route_not_found")
    assert origin.mark()[1] == before[1]


@pytest.mark.parametrize(("target", "forwarded"), [
    ("http://alt.test/echo?x=1", "/echo?x=1"), ("http://alt.test/echo", "/echo"),
    ("http://alt.test", "/"),
])
def test_absolute_form_target_is_routed_by_its_host(
        gw: GatewayProcess, origin: Origin, alt_origin: Origin, target: str,
        forwarded: str) -> None:
    before_main, before_alt = origin.mark(), alt_origin.mark()
    resp = exchange(gw.port, b"GET %b HTTP/1.1\r\n" % target.encode() + H + b"\r\n")
    assert resp.status == 200
    seen = resp.json()
    assert seen["target"] == forwarded
    assert ["Host", "alt.test"] in seen["headers"]
    assert not any(n.lower() == "host" and v == "gw.test" for n, v in seen["headers"])
    assert len(alt_origin.requests_since(before_alt)) == 1
    assert origin.requests_since(before_main) == []


def test_host_header_routes(gw: GatewayProcess, alt_origin: Origin) -> None:
    before = alt_origin.mark()
    assert get(gw.port, "/echo", host="alt.test").status == 200
    assert get(gw.port, "/echo", host="ALT.test:80").status == 200
    assert len(alt_origin.requests_since(before)) == 2


# --- accepted framing ----------------------------------------------------------------------------
def test_keep_alive_serves_several_requests_on_one_connection(
        gw: GatewayProcess, origin: Origin) -> None:
    with RawConnection(gw.port) as conn:
        for i in range(5):
            conn.send(b"GET /echo?i=%d HTTP/1.1\r\n" % i + H + b"\r\n")
            resp = conn.read_response()
            assert resp.status == 200
            assert resp.json()["target"] == f"/echo?i={i}"
            assert resp.header("connection") is None
        assert not conn.is_closed(wait=0.2)


def test_pipelined_requests_are_answered_in_order(gw: GatewayProcess) -> None:
    raw = (b"GET /slow?ms=300&n=1 HTTP/1.1\r\n" + H + b"\r\n"
           b"POST /echo?n=2 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
           b"GET /echo?n=3 HTTP/1.1\r\n" + H + b"\r\n")
    with RawConnection(gw.port) as conn:
        conn.send(raw)
        targets = [conn.read_response().json()["target"] for _ in range(3)]
    assert targets == ["/slow?ms=300&n=1", "/echo?n=2", "/echo?n=3"]


def test_http10_without_keep_alive_closes_after_response(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /echo HTTP/1.0\r\n" + H + b"\r\n")
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.json()["target"] == "/echo"
        assert conn.is_closed()


def test_http10_keep_alive_keeps_the_connection(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        for _ in range(2):
            conn.send(b"GET /echo HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n")
            resp = conn.read_response()
            assert resp.status == 200
            assert (resp.header("connection") or "").lower() == "keep-alive"
        assert not conn.is_closed(wait=0.2)


def test_http10_streamed_response_ends_with_close(gw: GatewayProcess) -> None:
    """A chunked upstream body cannot be chunked to an HTTP/1.0 client: close-delimited."""
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /chunked HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n")
        resp = conn.read_response()
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"alpha-beta-gamma"
        assert conn.is_closed()


def test_head_has_no_body_and_keeps_content_length(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"HEAD /big?bytes=5000 HTTP/1.1\r\n" + H + b"\r\n")
        resp = conn.read_response(head_request=True)
        assert resp.status == 200
        assert resp.header("content-length") == "5000"
        # No body bytes follow: the next response on the connection parses cleanly.
        conn.send(b"GET /echo?after=head HTTP/1.1\r\n" + H + b"\r\n")
        assert conn.read_response().json()["target"] == "/echo?after=head"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(gw: GatewayProcess, status: int) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(b"GET /status/%d HTTP/1.1\r\n" % status + H + b"\r\n")
        resp = conn.read_response()
        assert resp.status == status
        assert resp.header("content-length") is None
        assert resp.header("transfer-encoding") is None
        conn.send(b"GET /echo?after=%d HTTP/1.1\r\n" % status + H + b"\r\n")
        assert conn.read_response().json()["target"] == f"/echo?after={status}"


def test_expect_100_continue(gw: GatewayProcess, origin: Origin) -> None:
    before = origin.mark()
    with RawConnection(gw.port) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\n" + H
                  + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = conn.read_response()
        assert interim.status == 100
        conn.send(b"hello")
        resp = conn.read_response()
    assert resp.status == 200
    seen = resp.json()
    assert seen["body_length"] == 5
    assert not any(n.lower() == "expect" for n, _ in seen["headers"])
    assert len(origin.requests_since(before)) == 1


def test_chunked_request_body_and_trailers_are_forwarded(gw: GatewayProcess) -> None:
    import hashlib

    raw = (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trail: t1\r\nX-Sum: 42\r\n\r\n")
    resp = exchange(gw.port, raw)
    seen = resp.json()
    assert seen["body_length"] == 11
    assert seen["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert seen["trailers"] == [["X-Trail", "t1"], ["X-Sum", "42"]]


def test_chunked_response_trailers_reach_the_client(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/chunked")
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"alpha-beta-gamma"
    assert resp.trailers == [("x-checksum", "abc123"), ("x-count", "3")]


def test_close_delimited_response_is_relayed_whole(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/no-length")
    assert resp.status == 200
    assert resp.body == b"body until close; " * 100


# --- header rewriting ----------------------------------------------------------------------------
def test_hop_by_hop_request_headers_are_removed(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/echo", [
        ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Proxy-Connection", "keep-alive"), ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eA=="), ("X-Kept", "k"),
    ])
    names = {n.lower() for n, _ in resp.json()["headers"]}
    for gone in ("connection", "x-secret", "keep-alive", "te", "proxy-connection", "upgrade",
                 "proxy-authorization"):
        assert gone not in names
    assert "x-kept" in names


def test_hop_by_hop_response_headers_are_removed(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/hop-response")
    names = {n.lower() for n, _ in resp.headers}
    assert resp.body == b"hop"
    assert "x-public" in names
    for gone in ("x-internal", "keep-alive", "proxy-authenticate"):
        assert gone not in names


def test_repeated_headers_keep_their_order(gw: GatewayProcess) -> None:
    sent = [("X-A", "1"), ("X-B", "2"), ("x-a", "3"), ("Cookie", "a=1"), ("Cookie", "b=2")]
    resp = get(gw.port, "/echo", sent)
    seen = [(n, v) for n, v in resp.json()["headers"]
            if n.lower() in ("x-a", "x-b", "cookie")]
    assert seen == sent


def _forwarded(resp: Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, v in resp.json()["headers"]:
        if n.lower().startswith("x-forwarded-") or n.lower() == "x-request-id":
            out.setdefault(n.lower(), []).append(v)
    return out


def test_x_forwarded_set_and_client_copy_replaced_when_peer_untrusted(
        gw: GatewayProcess) -> None:
    resp = get(gw.port, "/echo", [("X-Forwarded-For", "6.6.6.6"),
                                  ("X-Forwarded-Proto", "https"),
                                  ("X-Forwarded-Host", "evil.test")])
    fwd = _forwarded(resp)
    assert fwd["x-forwarded-for"] == ["127.0.0.1"]
    assert fwd["x-forwarded-proto"] == ["http"]
    assert fwd["x-forwarded-host"] == ["gw.test"]


def test_x_forwarded_for_appended_when_peer_trusted(trusting_gw: GatewayProcess) -> None:
    resp = get(trusting_gw.port, "/echo", [("X-Forwarded-For", "203.0.113.7"),
                                           ("X-Forwarded-For", "10.0.0.1"),
                                           ("X-Forwarded-Proto", "https")])
    fwd = _forwarded(resp)
    assert fwd["x-forwarded-for"] == ["203.0.113.7, 10.0.0.1, 127.0.0.1"]
    assert fwd["x-forwarded-proto"] == ["https"]
    assert fwd["x-forwarded-host"] == ["gw.test"]
    plain = _forwarded(get(trusting_gw.port, "/echo"))
    assert plain["x-forwarded-for"] == ["127.0.0.1"]


def test_request_id_generated_when_absent(gw: GatewayProcess) -> None:
    a, b = get(gw.port, "/echo"), get(gw.port, "/echo")
    ida, idb = a.header("x-request-id"), b.header("x-request-id")
    assert ida and idb and ida != idb
    assert GENERATED_ID.match(ida)
    assert _forwarded(a)["x-request-id"] == [ida]


def test_request_id_kept_when_valid(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/echo", [("X-Request-Id", "client-id.42:abc")])
    assert resp.header("x-request-id") == "client-id.42:abc"
    assert _forwarded(resp)["x-request-id"] == ["client-id.42:abc"]


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "quote\"d"])
def test_request_id_replaced_when_invalid(gw: GatewayProcess, bad: str) -> None:
    resp = get(gw.port, "/echo", [("X-Request-Id", bad)])
    rid = resp.header("x-request-id")
    assert rid and rid != bad and GENERATED_ID.match(rid)
    assert _forwarded(resp)["x-request-id"] == [rid]


def test_gateway_error_carries_the_client_request_id(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/echo", [("X-Request-Id", "trace-me-1")], host="nowhere.test")
    doc = assert_gateway_error(resp, 404, "route_not_found")
    assert doc["request_id"] == "trace-me-1"


def test_a_queued_request_keeps_its_own_connection_semantics(gw: GatewayProcess) -> None:
    """A `Connection: close` request pipelined behind a slow keep-alive one is still answered:
    each response follows its own request's keep-alive, not the last one parsed."""
    raw = (b"GET /slow?ms=300&n=1 HTTP/1.1\r\n" + H + b"\r\n"
           b"GET /echo?n=2 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    with RawConnection(gw.port) as conn:
        conn.send(raw)
        first = conn.read_response()
        second = conn.read_response()
        assert first.status == 200 and first.header("connection") != "close"
        assert second.status == 200 and second.json()["target"] == "/echo?n=2"
        assert second.header("connection") == "close"
        assert conn.is_closed()


def test_bad_bytes_behind_in_flight_requests_are_refused_after_them(
        gw: GatewayProcess, origin: Origin) -> None:
    """Requests parsed before malformed bytes are answered in order, then the 400, then the
    connection closes; nothing of the bad request reaches the origin."""
    before = origin.mark()
    raw = (b"GET /slow?ms=300&n=1 HTTP/1.1\r\n" + H + b"\r\n"
           b"GET /echo?n=2 HTTP/1.1\r\n" + H + b"\r\n"
           b"GET /echo?n=3 HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
    with RawConnection(gw.port) as conn:
        conn.send(raw)
        answers = [conn.read_response() for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 400]
        assert answers[1].json()["target"] == "/echo?n=2"
        assert answers[2].json()["code"] == "bad_request"
        assert conn.is_closed()
    targets = [r.target for r in origin.requests_since(before)]
    assert "/echo?n=3" not in targets and "/echo?n=2" in targets
