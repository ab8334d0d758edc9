"""The request head builder (`HeadBuilder`): what llhttp parsed of a request, made into the
neutral `RequestHead`, or refused. No connection and no socket: the parser's callbacks are
wired to the builder as `H1Connection` wires them, and requests are fed whole or in pieces.
"""

from __future__ import annotations

from typing import Any

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.http.h1.head import HeadBuilder, Refused
from edgeward.http.headers import KIND_XFF, OWNED_BIT
from edgeward.http.listener import ListenerSettings, ListenerState
from edgeward.http.message import NO_BODY, STREAMED, RequestHead
from edgeward.http.stream import HandlerFactory

H = b"Host: gw.test\r\n"


class Feeder:
    """llhttp's callbacks to a HeadBuilder, as the connection makes them (bodies ignored)."""

    def __init__(self, **settings: Any) -> None:
        self.state = ListenerState(ListenerSettings(**settings), HandlerFactory())
        self.builder = HeadBuilder(self.state)
        self.builder.client_ip = "10.0.0.1"
        self.parser = httptools.HttpRequestParser(self)
        self.heads: list[RequestHead] = []
        self.read: bytes | None = None

    def on_message_begin(self) -> None:
        self.builder.begin()

    def on_url(self, part: bytes) -> None:
        self.builder.url_part(part)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.builder.field(name, value)

    def on_headers_complete(self) -> None:
        self.heads.append(self.builder.build(self.parser, self.read))

    def feed(self, data: bytes, *, whole: bool) -> None:
        """`whole`: `data` is one read holding exactly one head (it may then be relayed)."""
        self.read = data if whole else None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, Refused):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserUpgrade:
            pass  # a WebSocket handshake: what follows is not HTTP (the server codec's care)


def head_of(raw: bytes, *, pieces: list[bytes] | None = None, **settings: Any) -> RequestHead:
    f = Feeder(**settings)
    if pieces is None:
        f.feed(raw, whole=True)
    else:
        for piece in pieces:
            f.feed(piece, whole=False)
    [head] = f.heads
    return head


def refusal(raw: bytes, **settings: Any) -> tuple[str, str | None]:
    with pytest.raises(Refused) as info:
        head_of(raw, **settings)
    return info.value.code, info.value.message


def fields(head: RequestHead) -> list[tuple[bytes, bytes]]:
    return list(head.headers.fields)


# --- what the head holds -------------------------------------------------------------------------
def test_a_plain_get() -> None:
    head = head_of(b"GET /items?id=7 HTTP/1.1\r\nHost: GW.test:8080\r\nAccept: */*\r\n\r\n")
    assert (head.method, head.target, head.path, head.query_string) == (
        "GET", b"/items?id=7", "/items", "id=7")
    assert head.host == "gw.test" and head.authority == b"GW.test:8080"
    assert fields(head) == [(b"Host", b"GW.test:8080"), (b"Accept", b"*/*")]
    assert head.body_length == NO_BODY
    assert head.keep_alive and not head.http10 and not head.expect_continue
    assert head.client_ip == "10.0.0.1"


@pytest.mark.parametrize(("framing", "length"), [
    (b"Content-Length: 5\r\n", 5), (b"Content-Length: 0\r\n", NO_BODY),
    (b"Transfer-Encoding: chunked\r\n", STREAMED), (b"Transfer-Encoding: Chunked \r\n", STREAMED),
    (b"", NO_BODY),
])
def test_body_framing_becomes_body_length_and_leaves_the_fields(framing: bytes,
                                                               length: int) -> None:
    head = head_of(b"POST /u HTTP/1.1\r\n" + H + framing + b"\r\n")
    assert head.body_length == length
    assert fields(head) == [(b"Host", b"gw.test")]


def test_hop_by_hop_fields_are_consumed() -> None:
    head = head_of(b"GET / HTTP/1.1\r\n" + H + b"Connection: keep-alive, X-Secret\r\n"
                   b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
                   b"Upgrade: websocket\r\nProxy-Authorization: Basic eA==\r\nX-Secret: s\r\n"
                   b"X-Kept: k\r\n\r\n")
    assert fields(head) == [(b"Host", b"gw.test"), (b"X-Kept", b"k")]
    assert not head.relayable()


@pytest.mark.parametrize("value", [b"websocket", b"WebSocket", b"websocket, foo/2"])
def test_a_websocket_handshake_reaches_the_exchange_marked(value: bytes) -> None:
    head = head_of(b"GET /chat HTTP/1.1\r\n" + H + b"Connection: keep-alive, Upgrade\r\n"
                   b"Upgrade: " + value + b"\r\nSec-WebSocket-Key: k\r\n\r\n")
    assert head.upgrade == b"websocket"
    assert not head.keep_alive  # unless it switches, the connection ends with the answer
    assert fields(head) == [(b"Host", b"gw.test"), (b"Sec-WebSocket-Key", b"k")]


def test_upgrade_without_connection_upgrade_is_a_plain_request() -> None:
    head = head_of(b"GET /chat HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\n\r\n")
    assert head.upgrade is None
    assert head.keep_alive


def test_connection_naming_host_keeps_host() -> None:
    head = head_of(b"GET / HTTP/1.1\r\n" + H + b"Connection: host, x-a\r\nX-A: 1\r\n\r\n")
    assert fields(head) == [(b"Host", b"gw.test")]
    assert head.host == "gw.test"


def test_expect_100_continue_only_for_http11() -> None:
    raw = b"POST / HTTP/1.%d\r\n" + H + b"Content-Length: 1\r\nExpect: 100-Continue\r\n\r\n"
    assert head_of(raw % 1).expect_continue
    assert not head_of(raw % 0).expect_continue


@pytest.mark.parametrize(("version", "connection", "keep", "http10"), [
    (b"1.1", b"", True, False), (b"1.1", b"Connection: close\r\n", False, False),
    (b"1.0", b"", False, True), (b"1.0", b"Connection: keep-alive\r\n", True, True),
])
def test_version_and_keep_alive(version: bytes, connection: bytes, keep: bool,
                                http10: bool) -> None:
    head = head_of(b"GET / HTTP/" + version + b"\r\n" + H + connection + b"\r\n")
    assert (head.keep_alive, head.http10) == (keep, http10)


def test_http10_without_host_is_accepted() -> None:
    head = head_of(b"GET / HTTP/1.0\r\n\r\n")
    assert head.host == "" and head.http10


def test_a_valid_request_id_is_kept_and_an_invalid_one_replaced() -> None:
    kept = head_of(b"GET / HTTP/1.1\r\n" + H + b"X-Request-Id: abc.42:x\r\n\r\n")
    assert kept.request_id == "abc.42:x" and kept.id_line == b"x-request-id: abc.42:x\r\n"
    replaced = head_of(b"GET / HTTP/1.1\r\n" + H + b"X-Request-Id: has space\r\n\r\n")
    assert replaced.request_id and replaced.request_id != "has space"
    assert replaced.id_line == b"x-request-id: " + replaced.request_id.encode() + b"\r\n"
    assert b"x-request-id" not in b"".join(n.lower() for n, _ in fields(replaced))


def test_gateway_owned_fields_sent_by_the_client_are_flagged() -> None:
    head = head_of(b"GET / HTTP/1.1\r\n" + H + b"x-forwarded-for: 1.2.3.4\r\n\r\n")
    assert head.owned & OWNED_BIT[KIND_XFF]
    assert head_of(b"GET / HTTP/1.1\r\n" + H + b"\r\n").owned == 0


def test_absolute_form_authority_replaces_host() -> None:
    head = head_of(b"GET http://Alt.test:81/p?q=1 HTTP/1.1\r\n" + H + b"X-A: 1\r\n\r\n")
    assert head.target == b"/p?q=1" and head.host == "alt.test"
    assert fields(head) == [(b"Host", b"Alt.test:81"), (b"X-A", b"1")]
    assert not head.relayable()


@pytest.mark.parametrize(("target", "forwarded"), [
    (b"http://a.test", b"/"), (b"http://a.test/p", b"/p"), (b"http://a.test?x", b"/?x"),
    (b"http://u:p@a.test/p", b"/p"), (b"https://a.test:8443", b"/"),
])
def test_absolute_form_without_path_or_query(target: bytes, forwarded: bytes) -> None:
    head = head_of(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert head.target == forwarded and head.host == "a.test"


# --- underscores ---------------------------------------------------------------------------------
UNDERSCORED = b"GET / HTTP/1.1\r\n" + H + b"X_Tenant: a\r\nTransfer_Encoding: chunked\r\n\r\n"


def test_underscore_names_dropped() -> None:
    f = Feeder()
    f.feed(UNDERSCORED, whole=True)
    assert fields(f.heads[0]) == [(b"Host", b"gw.test")]
    assert f.heads[0].body_length == NO_BODY
    assert f.state.underscore_headers == 2
    assert not f.heads[0].relayable()


def test_underscore_names_rejected() -> None:
    assert refusal(UNDERSCORED, underscores="reject") == (
        "bad_request", "header names with underscores are refused")


def test_underscore_names_allowed() -> None:
    f = Feeder(underscores="allow")
    f.feed(UNDERSCORED, whole=True)
    head = f.heads[0]
    assert fields(head)[1:] == [(b"X_Tenant", b"a"), (b"Transfer_Encoding", b"chunked")]
    assert head.body_length == NO_BODY  # an ordinary field: it frames nothing
    assert f.state.underscore_headers == 0
    assert head.relayable()


# --- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sent", "normal"), [
    (b"//a", b"/a"), (b"/x/../a", b"/a"), (b"/%61", b"/a"), (b"/./a", b"/a"),
    (b"/a/%2f/../b", b"/a/b"), (b"/%7E", b"/~"), (b"/a%2fb", b"/a%2Fb"), (b"/a/.", b"/a/"),
])
def test_path_normalize(sent: bytes, normal: bytes) -> None:
    head = head_of(b"GET " + sent + b"?q=/../x HTTP/1.1\r\n" + H + b"\r\n")
    assert head.path == normal.decode() and head.target == normal + b"?q=/../x"
    assert not head.relayable()  # forwarded with another request line
    with pytest.raises(Refused):
        head_of(b"GET " + sent + b" HTTP/1.1\r\n" + H + b"\r\n", path_normalization="reject")
    off = head_of(b"GET " + sent + b" HTTP/1.1\r\n" + H + b"\r\n", path_normalization="off")
    assert off.target == sent and off.path == sent.decode()


@pytest.mark.parametrize("policy", ["normalize", "reject", "off"])
@pytest.mark.parametrize("sent", [b"/..", b"/a/../..", b"/%2e%2E", b"/%zz", b"/a%2", b"/%",
                                  b"/a#b", b"/a\"b"])
def test_invalid_path_refused_whatever_the_policy(policy: str, sent: bytes) -> None:
    assert refusal(b"GET " + sent + b" HTTP/1.1\r\n" + H + b"\r\n",
                   path_normalization=policy)[0] == "bad_request"


def test_a_clean_path_is_kept_as_sent() -> None:
    clean = head_of(b"GET /a/b-c_d.e~f/%2F?x=%zz HTTP/1.1\r\n" + H + b"\r\n",
                    path_normalization="reject")
    assert clean.target == b"/a/b-c_d.e~f/%2F?x=%zz" and clean.relayable()


# --- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "code"), [
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "not_implemented"),
    (b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: h2c\r\n\r\n", "bad_request"),
    (b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: IRC/6.9\r\n\r\n",
     "not_implemented"),
    (b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: h2c, foo\r\n\r\n",
     "bad_request"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", "not_implemented"),
    (b"GET * HTTP/1.1\r\n" + H + b"\r\n", "bad_request"),
    (b"GET ftp://a/ HTTP/1.1\r\n" + H + b"\r\n", "bad_request"),
    (b"GET /?a#b HTTP/1.1\r\n" + H + b"\r\n", "bad_request"),
    (b"GET / HTTP/1.1\r\n\r\n", "bad_request"),
    (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", "bad_request"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_request"),
    (b"GET / HTTP/1.1\r\nHost: " + b"a" * 254 + b"\r\n\r\n", "bad_request"),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "bad_request"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "bad_request"),
])
def test_refused(raw: bytes, code: str) -> None:
    assert refusal(raw)[0] == code


def test_host_up_to_253_characters() -> None:
    host = b".".join([b"a" * 63] * 3) + b"." + b"b" * 61
    assert head_of(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n").host == host.decode()
    assert refusal(b"GET / HTTP/1.1\r\nHost: " + host + b"b\r\n\r\n")[0] == "bad_request"


def test_limits() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    assert len(fields(head_of(b"GET / HTTP/1.1\r\n" + H + many + b"\r\n", max_headers=6))) == 6
    assert refusal(b"GET / HTTP/1.1\r\n" + H + many + b"X-5: v\r\n\r\n",
                   max_headers=6)[0] == "header_too_large"
    assert refusal(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n",
                   max_request_line=100)[0] == "uri_too_long"
    assert refusal(b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 100 + b"\r\n\r\n",
                   max_header_bytes=100)[0] == "header_too_large"


# --- the head as received ------------------------------------------------------------------------
CANONICAL = (b"POST /items?id=7 HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\n"
             b"X-Empty: \r\nX-Repeated: 1\r\nx-repeated: 2\r\n\r\n")


def test_a_canonical_head_in_one_read_keeps_its_bytes() -> None:
    head = head_of(CANONICAL)
    assert head.headers.wire == CANONICAL[:-2]


@pytest.mark.parametrize("change", [
    (b"Host: gw.test", b"Host:gw.test"),
    (b"HTTP/1.1\r\n", b"HTTP/1.0\r\nConnection: keep-alive\r\n"),
    (b"/items", b"//items"), (b"Host: gw.test\r\n", b"Host: gw.test\r\nConnection: x-a\r\n"),
    (b"Host: gw.test\r\n", b"Host: gw.test\r\nContent-Length: 0\r\n"),
])
def test_a_head_that_cannot_be_relayed_has_no_wire(change: tuple[bytes, bytes]) -> None:
    head = head_of(CANONICAL.replace(*change))
    assert head.headers.wire is None


def test_a_head_with_more_after_it_in_the_read_has_no_wire() -> None:
    assert head_of(CANONICAL + b"GET").headers.wire is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CANONICAL) - 1), unique=True,
                max_size=20))
def test_a_head_in_pieces_says_the_same(cuts: list[int]) -> None:
    whole = head_of(CANONICAL)
    edges = [0, *sorted(cuts), len(CANONICAL)]
    pieces = [CANONICAL[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    split = head_of(CANONICAL, pieces=pieces)
    for attr in ("method", "target", "path", "host", "authority", "body_length", "keep_alive",
                 "http10", "expect_continue", "owned"):
        assert getattr(split, attr) == getattr(whole, attr), attr
    assert fields(split) == fields(whole)
    assert split.headers.wire is None
