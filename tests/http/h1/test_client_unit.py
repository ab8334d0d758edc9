"""The upstream connection (`UpstreamConnection`) without sockets: responses fed whole and one
byte per read through the real listener and exchange (tests/support/fakes.py), checked as the
client receives them and by what becomes of the connection (pooled, closed, aborted).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.http.h1.client import MAX_RESPONSE_HEAD
from support.fakes import Harness, Peer, get, ok
from support.rawhttp import Response
from support.vectors import assert_gateway_error


def relay(response: bytes, *, how: str = "whole", request: bytes | None = None
          ) -> tuple[Harness, Peer, Peer]:
    """One request through the gateway; the upstream answers `response` (whole, bytewise)."""
    h = Harness()
    c = h.client()
    c.send(request or get("/", extra=b"X-Request-Id: rid-1\r\n"))
    up = h.upstreams[0]
    if how == "bytewise":
        up.send_bytewise(response)
    else:
        up.send(response)
    return h, c, up


def pooled(h: Harness, up: Peer) -> bool:
    return up.protocol in h.pool().idle and not up.closed


def names(resp: Response) -> list[str]:
    return [n.lower() for n, _ in resp.headers]


HOWS = ["whole", "bytewise"]


# --- responses as received -----------------------------------------------------------------------
@pytest.mark.parametrize("how", HOWS)
def test_a_content_length_response(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nServer: o\r\nContent-Length: 5\r\n\r\nhello", how=how)
    assert c.received == (b"HTTP/1.1 200 OK\r\nServer: o\r\nContent-Length: 5\r\n"
                          b"x-request-id: rid-1\r\n\r\nhello")
    assert pooled(h, up)


@pytest.mark.parametrize("how", HOWS)
def test_a_chunked_response_with_trailers(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n", how=how)
    resp = c.response()
    assert resp.body == b"abcde" and resp.trailers == [("X-Sum", "5")]
    assert resp.header_all("transfer-encoding") == ["chunked"]
    assert pooled(h, up)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_how_a_response_is_split_into_reads_changes_nothing_for_the_client(
        data: st.DataObject) -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\n"
           b"Keep-Alive: timeout=5\r\nX-Kept: k\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), unique=True, max_size=15))
    _, whole, _ = relay(raw)
    h = Harness()
    c = h.client()
    c.send(get("/", extra=b"X-Request-Id: rid-1\r\n"))
    edges = [0, *sorted(cuts), len(raw)]
    for a, b in zip(edges, edges[1:], strict=False):
        h.upstreams[0].send(raw[a:b])
    split, expected = c.response(), whole.response()
    assert (split.status, split.headers, split.body, split.trailers) == (
        expected.status, expected.headers, expected.body, expected.trailers)
    assert pooled(h, h.upstreams[0])


# --- what is consumed or dropped -----------------------------------------------------------------
@pytest.mark.parametrize("how", HOWS)
def test_interim_responses_are_consumed(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", how=how)
    assert [r.status for r in c.responses()] == [200]
    assert c.received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert pooled(h, up)


@pytest.mark.parametrize("how", HOWS)
def test_hop_by_hop_and_connection_named_fields_are_dropped(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nConnection: X-Internal, keep-alive\r\n"
                     b"x-internal: secret\r\nKeep-Alive: timeout=5\r\n"
                     b"Proxy-Authenticate: Basic\r\nProxy-Connection: keep-alive\r\n"
                     b"Upgrade: h2\r\nTE: trailers\r\nX-Public: 1\r\nX-Request-Id: origin-id\r\n"
                     b"Content-Length: 3\r\n\r\nhop", how=how)
    resp = c.response()
    assert names(resp) == ["x-public", "content-length", "x-request-id"]
    assert resp.header("x-request-id") == "rid-1"  # the gateway's, not the origin's
    assert resp.body == b"hop"


@pytest.mark.parametrize("how", HOWS)
def test_content_length_and_chunked_never_reach_the_client_together(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", how=how)
    [resp] = c.responses()
    if resp.status == 502:  # refused as ambiguous framing: just as safe
        assert_gateway_error(resp, 502, "bad_gateway")
        assert up.transport.aborted
        return
    assert "content-length" not in names(resp)
    assert resp.header("transfer-encoding") == "chunked" and resp.body == b"abc"


def test_a_response_to_head_has_no_body_and_the_connection_is_reused() -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
                     request=b"HEAD /big HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    resp = c.response(head_request=True)
    assert resp.header("content-length") == "5000"
    assert pooled(h, up)
    c.send(get("/next"))
    assert [r.target for r in up.requests()] == ["/big", "/next"]
    up.send(ok(b"next"))
    assert c.response().body == b"next"


def test_a_chunked_response_to_head_keeps_its_framing_field() -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                     request=b"HEAD / HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    resp = c.response(head_request=True)
    assert resp.status == 200
    assert pooled(h, up)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    h, c, up = relay(b"HTTP/1.1 %d X\r\nX-A: 1\r\n\r\n" % status)
    resp = c.response()
    assert resp.status == status
    assert "content-length" not in names(resp) and "transfer-encoding" not in names(resp)
    assert pooled(h, up)


@pytest.mark.parametrize("how", HOWS)
def test_a_close_delimited_body_is_streamed_and_the_connection_not_reused(how: str) -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close",
                     how=how)
    assert c.received.count(b"HTTP/1.1 200") == 1
    assert h.done == []  # the body goes on until the upstream closes
    up.close()
    resp = c.response()
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"body until close"
    assert not pooled(h, up) and up.transport.lost
    assert h.last().status == 200 and h.last().error_code is None


def test_an_http10_upstream_is_answered_as_http11_and_not_reused() -> None:
    h, c, up = relay(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert c.received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert up.closed and not pooled(h, up)


def test_an_http10_upstream_with_keep_alive_is_reused() -> None:
    h, c, up = relay(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
    assert c.response().body == b"ok"
    assert pooled(h, up)


def test_connection_close_from_the_upstream_closes_its_connection_only() -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    resp = c.response()
    assert resp.header("connection") is None  # the client's connection goes on
    assert up.closed and not c.closed


# --- failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pieces", [1, 70])
def test_a_response_head_over_the_limit_is_502(pieces: int) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * MAX_RESPONSE_HEAD + b"\r\n"
    h = Harness()
    c = h.client()
    c.send(get())
    up = h.upstreams[0]
    step = -(-len(head) // pieces)
    for i in range(0, len(head), step):
        up.send(head[i:i + step])
    [resp] = c.responses()
    assert_gateway_error(resp, 502, "bad_gateway")
    assert up.transport.aborted
    assert not c.closed  # the client's connection is fine


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX\r\n\r\n", b"XTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_a_malformed_response_head_is_502(raw: bytes) -> None:
    h, c, up = relay(raw)
    answers = c.responses()
    if raw.endswith(b"zz\r\n"):  # the head was fine, its body was not: the client's stream
        assert answers == [] and c.transport.aborted  # resets (the head is never sent whole)
    else:
        assert_gateway_error(answers[0], 502, "bad_gateway")
    assert up.transport.aborted
    assert h.last().error_code == "bad_gateway"


def test_a_response_cut_short_resets_the_client() -> None:
    h, c, up = relay(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    up.close()
    assert c.transport.aborted
    assert h.last().error_code == "upstream_reset"


def test_an_idle_connection_that_speaks_is_closed() -> None:
    h, c, up = relay(ok())
    assert pooled(h, up)
    up.send(b"HTTP/1.1 200 OK\r\n")
    assert up.closed and not pooled(h, up)


def test_an_idle_connection_the_upstream_closed_leaves_the_pool() -> None:
    h, c, up = relay(ok())
    up.close()
    assert not pooled(h, up)
    assert h.pool().open == 0
    c.send(get("/again"))
    assert len(h.upstreams) == 2  # a fresh connection, not the dead one


def test_an_http10_upstream_with_transfer_encoding_is_not_reused() -> None:
    """RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding is faulty framing; after the message the
    connection must not carry another."""
    h, c, up = relay(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert c.response().body == b"abc"
    assert up.closed and not pooled(h, up)
