"""The request head built from an HTTP/2 header list (RFC 9113 §8), without a codec."""

from __future__ import annotations

import pytest

from edgeward.http.h1.head import HeadBuilder, Refused
from edgeward.http.h2.request_head import Malformed, build_head
from edgeward.http.listener import ListenerSettings, ListenerState
from edgeward.http.message import NO_BODY, STREAMED
from edgeward.http.stream import HandlerFactory

BASE = ((b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"API.test:8443"),
        (b":path", b"/v1/x?q=1"))


def builder(**settings: object) -> HeadBuilder:
    b = HeadBuilder(ListenerState(ListenerSettings(**settings), HandlerFactory(),  # type: ignore[arg-type]
                                  scheme="https"))
    b.client_ip = "10.0.0.9"
    return b


def test_pseudo_headers_make_the_head() -> None:
    head = build_head(builder(), BASE + ((b"accept", b"*/*"),), False)
    assert (head.method, head.target, head.path, head.host) == ("POST", b"/v1/x?q=1", "/v1/x",
                                                                "api.test")
    assert head.headers.fields[0] == (b"host", b"API.test:8443")
    assert head.body_length == STREAMED and head.client_ip == "10.0.0.9"
    assert head.scheme == "https"


def test_end_stream_and_content_length_frame_the_body() -> None:
    assert build_head(builder(), BASE, True).body_length == NO_BODY
    head = build_head(builder(), BASE + ((b"content-length", b"12"),), False)
    assert head.body_length == 12
    assert head.headers.get("content-length") is None  # framing is the codecs'


def test_authority_wins_over_a_host_field_and_cookies_are_joined() -> None:
    head = build_head(builder(), BASE + ((b"host", b"other.test"), (b"cookie", b"a=1"),
                                         (b"x", b"y"), (b"cookie", b"b=2")), True)
    assert head.host == "api.test"
    assert head.headers.get_all("host") == ["API.test:8443"]
    assert head.cookie("a") == "1" and head.cookie("b") == "2"
    assert head.headers.get_all("cookie") == ["a=1; b=2"]


def test_the_request_id_is_taken_and_te_trailers_dropped() -> None:
    head = build_head(builder(), BASE + ((b"x-request-id", b"abc-123"), (b"te", b"trailers")),
                      True)
    assert head.request_id == "abc-123" and head.headers.get("te") is None
    assert head.id_line == b"x-request-id: abc-123\r\n"


@pytest.mark.parametrize("fields", [
    BASE + ((b"Accept", b"x"),),
    BASE + ((b"connection", b"close"),),
    BASE + ((b"keep-alive", b"5"),),
    BASE + ((b"proxy-connection", b"x"),),
    BASE + ((b"transfer-encoding", b"chunked"),),
    BASE + ((b"upgrade", b"h2c"),),
    BASE + ((b"te", b"gzip"),),
    BASE + ((b"a", b"b"), (b":path", b"/again")),
    BASE + ((b":path", b"/again"),),
    BASE + ((b":protocol", b"websocket"),),
    BASE[1:],
    ((b":method", b"GET"), (b":authority", b"a.test")),
    BASE + ((b"content-length", b"x1"),),
], ids=["uppercase", "connection", "keep-alive", "proxy-connection", "transfer-encoding",
        "upgrade", "te", "pseudo-after-regular", "repeated-pseudo", "unknown-pseudo",
        "no-method", "no-path", "bad-content-length"])
def test_malformed_lists_are_stream_errors(fields: tuple[tuple[bytes, bytes], ...]) -> None:
    with pytest.raises(Malformed):
        build_head(builder(), fields, True)


@pytest.mark.parametrize(("fields", "code"), [
    (((b":method", b"CONNECT"), (b":authority", b"a.test:443")), "not_implemented"),
    (BASE[:2] + ((b":authority", b"bad host"),) + BASE[3:], "bad_request"),
    (BASE[:3] + ((b":path", b"/../x"),), "bad_request"),
    (BASE + tuple((b"x-%d" % i, b"v") for i in range(101)), "header_too_large"),
    (BASE + ((b"x_y", b"1"),), "bad_request"),
])
def test_refusals_name_their_error_code(fields: tuple[tuple[bytes, bytes], ...],
                                        code: str) -> None:
    with pytest.raises(Refused) as info:
        build_head(builder(underscores="reject"), fields, True)
    assert info.value.code == code


def test_underscored_names_are_dropped_by_default() -> None:
    b = builder()
    head = build_head(b, BASE + ((b"x_y", b"1"),), True)
    assert head.headers.get("x_y") is None and b.state.underscore_headers == 1
