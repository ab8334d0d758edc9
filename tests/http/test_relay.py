"""Heads relayed as received: what the origin and the client see, byte for byte.

The listener forwards a request head that arrived whole and canonically written (`name: value`)
as it came, and the upstream side relays a response head as it came, minus the lines it must
drop. These tests pin that the bytes are exact where they should be, and that a head written
any other way (odd spacing, padding CRLFs, pipelining, HTTP/1.0) is rewritten correctly and can
never smuggle a line or a request past the gateway.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.gateway import GatewayProcess
from support.rawhttp import RawConnection, exchange
from support.scripted import ScriptedOrigin, ok


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedOrigin]:
    o = ScriptedOrigin()
    yield o
    o.stop()


@pytest.fixture(scope="module")
def gw(scripted: ScriptedOrigin) -> Iterator[GatewayProcess]:
    config = f"""\
listen: {{listen}}
upstreams: {{o: {{targets: ["{scripted.address}"]}}}}
routes: [{{name: all, match: {{path_prefix: /}}, upstream: o}}]
"""
    with GatewayProcess.config(config) as g:
        yield g


@pytest.fixture(autouse=True)
def fresh(scripted: ScriptedOrigin) -> Iterator[None]:
    scripted.reply = lambda head: ok()
    scripted.take()
    yield


GATEWAY_LINES = re.compile(
    rb"x-forwarded-for: 127\.0\.0\.1\r\nx-forwarded-proto: http\r\n"
    rb"x-forwarded-host: ([^\r]*)\r\nx-request-id: ([^\r]+)\r\n\r\n\Z")


def split_forwarded(head: bytes) -> tuple[bytes, bytes, bytes]:
    """(what came before the gateway's lines, X-Forwarded-Host, X-Request-Id)."""
    m = GATEWAY_LINES.search(head)
    assert m is not None, head
    return head[:m.start()], m.group(1), m.group(2)


# Requests ------------------------------------------------------------------------------------

def test_a_canonical_head_reaches_the_origin_byte_for_byte(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    sent = (b"GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: relay.test\r\nUser-Agent: t/1\r\n"
            b"X-Odd-Case: V a l\r\naccept: */*\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
    resp = exchange(gw.port, sent)
    assert resp.status == 200
    [(_, head)] = scripted.take()
    before, host, rid = split_forwarded(head)
    assert before == sent[:-2]
    assert host == b"relay.test"
    assert rid.decode() == resp.header("x-request-id")


@pytest.mark.parametrize("sent", [
    # Each is as long as its canonical spelling would be (missing spaces made up by CRLFs
    # after the head, which llhttp skips): a relay that trusted the length alone would
    # forward the padding inside the head.
    b"GET / HTTP/1.1\r\nHost:relay.test\r\nA:b\r\n\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: relay.test \r\nA:b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost:\trelay.test\r\nA:  b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: relay.test\r\nA: b\r\nConnection: keep-alive\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost:relay.test\r\nA:b\r\nC:d\r\nE:f\r\n\r\n",
])
def test_other_spellings_are_rewritten_not_smuggled(
        gw: GatewayProcess, scripted: ScriptedOrigin, sent: bytes) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(sent)
        assert conn.read_response().status == 200
        conn.send(b"GET /second HTTP/1.1\r\nHost: relay.test\r\n\r\n")
        assert conn.read_response().status == 200
    heads = [h for _, h in scripted.take()]
    assert len(heads) == 2, heads
    before, host, _ = split_forwarded(heads[0])
    assert host == b"relay.test"
    lines = before.split(b"\r\n")
    assert lines[0] == b"GET / HTTP/1.1"
    assert [ln.rstrip() for ln in lines if ln.startswith(b"Host")] == [b"Host: relay.test"]
    assert all(line and b"\r" not in line and b"\n" not in line for line in lines[1:-1])
    assert not any(line.lower().startswith(b"connection") for line in lines)
    assert heads[1].startswith(b"GET /second HTTP/1.1\r\nHost: relay.test\r\n")


_OWS = st.sampled_from(["", " ", "  ", "\t", " \t"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(_OWS, st.from_regex(r"[a-z0-9][a-z0-9 ]{0,8}[a-z0-9]",
                                                     fullmatch=True), _OWS),
                       min_size=1, max_size=4),
       host_ows=st.tuples(_OWS, _OWS), padding=st.integers(0, 3))
def test_any_spacing_forwards_exactly_the_values(
        gw: GatewayProcess, scripted: ScriptedOrigin,
        values: list[tuple[str, str, str]], host_ows: tuple[str, str], padding: int) -> None:
    scripted.take()
    head = f"GET /p HTTP/1.1\r\nHost:{host_ows[0]}relay.test{host_ows[1]}\r\n"
    for i, (pre, value, post) in enumerate(values):
        head += f"X-H{i}:{pre}{value}{post}\r\n"
    with RawConnection(gw.port) as conn:
        conn.send(head.encode() + b"\r\n" + b"\r\n" * padding)
        assert conn.read_response().status == 200
        conn.send(b"GET /again HTTP/1.1\r\nHost: relay.test\r\n\r\n")
        assert conn.read_response().status == 200
    heads = [h for _, h in scripted.take()]
    assert len(heads) == 2
    before, _, _ = split_forwarded(heads[0])
    # Leading whitespace is not part of a value (one SP or HTAB may stay, as sent);
    # trailing whitespace is kept as sent.
    lines = before.split(b"\r\n")
    assert lines[0] == b"GET /p HTTP/1.1" and lines[-1] == b""
    fields = [line.partition(b":") for line in lines[1:-1]]
    assert all(sep == b":" and len(rest) - len(rest.lstrip(b" \t")) <= 1
               for _, sep, rest in fields), lines
    assert [(n, rest.lstrip(b" \t")) for n, _, rest in fields] == (
        [(b"Host", b"relay.test" + host_ows[1].encode())]
        + [(b"X-H%d" % i, (v + post).encode()) for i, (_, v, post) in enumerate(values)])
    assert heads[1].startswith(b"GET /again HTTP/1.1\r\n")


def test_pipelined_heads_in_one_read_each_get_their_own_lines(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    one = b"GET /1 HTTP/1.1\r\nHost: relay.test\r\n\r\n"
    two = b"GET /2 HTTP/1.1\r\nHost: relay.test\r\nX-Two: 2\r\n\r\n"
    with RawConnection(gw.port) as conn:
        conn.send(one + two)
        first, second = conn.read_response(), conn.read_response()
    heads = [h for _, h in scripted.take()]
    assert [h.split(b" ")[1] for h in heads] == [b"/1", b"/2"]
    ids = [split_forwarded(h)[2].decode() for h in heads]
    assert ids == [first.header("x-request-id"), second.header("x-request-id")]
    assert split_forwarded(heads[1])[0] == two[:-2]


def test_an_http10_head_is_forwarded_as_http11(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    resp = exchange(gw.port, b"GET /old HTTP/1.0\r\nHost: relay.test\r\n\r\n")
    assert resp.status == 200
    [(_, head)] = scripted.take()
    assert head.startswith(b"GET /old HTTP/1.1\r\nHost: relay.test\r\n")


# Responses -----------------------------------------------------------------------------------

def _get(gw: GatewayProcess, path: str = "/") -> bytes:
    """The raw response head the client gets for one GET."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET %b HTTP/1.1\r\nHost: relay.test\r\n\r\n" % path.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def _lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")[:-1]


@pytest.mark.parametrize("connection", [
    b"Connection: keep-alive\r\n",
    b"Connection:keep-alive\r\n",
    b"CONNECTION:   keep-alive  \r\n",
    b"connection: keep-alive\r\nConnection: Keep-Alive\r\n",
])
@pytest.mark.parametrize("where", ["last", "middle", "first"])
def test_the_upstreams_connection_lines_are_dropped_and_the_rest_relayed_as_is(
        gw: GatewayProcess, scripted: ScriptedOrigin, connection: bytes, where: str) -> None:
    others = [b"Server: scripted/1\r\n", b"X-Case: MiXeD  value\r\n", b"content-length: 2\r\n"]
    at = {"first": 0, "middle": 1, "last": 3}[where]
    fields = others[:at] + [connection] + others[at:]
    scripted.reply = lambda head: b"HTTP/1.1 200 Fine\r\n" + b"".join(fields) + b"\r\nok"
    for _ in range(2):  # the upstream connection is reused: keep-alive is understood
        head = _get(gw)
        lines = _lines(head)
        assert lines[0] == b"HTTP/1.1 200 Fine"
        assert [ln + b"\r\n" for ln in lines[1:4]] == others
        assert lines[4].startswith(b"x-request-id: ")
        assert len(lines) == 5
    assert len({n for n, _ in scripted.take()}) == 1


def test_headers_named_by_connection_are_dropped_in_any_case(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: (
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal, keep-alive\r\nx-INTERNAL: secret\r\n"
        b"X-Public: 1\r\nContent-Length: 2\r\n\r\nok")
    lines = _lines(_get(gw))
    assert not any(ln.lower().startswith((b"x-internal", b"connection")) for ln in lines)
    assert b"X-Public: 1" in lines


def test_the_gateway_request_id_replaces_the_upstreams(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: (
        b"HTTP/1.1 200 OK\r\nX-Request-Id: from-upstream\r\nContent-Length: 2\r\n\r\nok")
    lines = _lines(_get(gw))
    ids = [ln for ln in lines if ln.lower().startswith(b"x-request-id:")]
    assert len(ids) == 1 and b"from-upstream" not in ids[0]


def test_an_http10_upstream_is_answered_as_http11_and_not_reused(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for _ in range(2):
        assert _lines(_get(gw))[0] == b"HTTP/1.1 200 OK"
    # HTTP/1.0 without keep-alive: the gateway closes after each, the next gets a new one
    assert len({n for n, _ in scripted.take()}) == 2


def test_interim_responses_are_consumed(gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok")
    lines = _lines(_get(gw))
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"X-Final: yes" in lines
    assert not any(ln.startswith(b"Link") for ln in lines)


def test_a_chunked_response_never_reaches_the_client_with_a_content_length(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n")
    with RawConnection(gw.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: relay.test\r\n\r\n")
        resp = conn.read_response()
    # llhttp refuses the pair (502) or the body is re-framed: either way never both.
    assert not (resp.header("content-length") and resp.header("transfer-encoding"))
    if resp.status == 200:
        assert resp.body == b"ok"
    else:
        assert resp.status == 502


def test_a_response_head_over_64_kib_is_a_bad_gateway(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: b"HTTP/1.1 200 OK\r\n" + b"X-Big: %b\r\n" % (b"x" * 4000) * 20
    resp = exchange(gw.port, b"GET / HTTP/1.1\r\nHost: relay.test\r\n\r\n")
    assert resp.status == 502
    assert resp.json()["code"] == "bad_gateway"


def test_empty_lines_before_a_status_line_are_not_relayed(
        gw: GatewayProcess, scripted: ScriptedOrigin) -> None:
    scripted.reply = lambda head: b"\r\n\r\nHTTP/1.1 201 Made\r\nContent-Length: 2\r\n\r\nok"
    resp = exchange(gw.port, b"GET / HTTP/1.1\r\nHost: relay.test\r\n\r\n")
    assert (resp.status, resp.reason, resp.body) == (201, "Made", b"ok")
