"""Header operations on heads, without sockets: what is relayed as received and what is not."""

from __future__ import annotations

from edgeward.filters.builtin.headers import RequestHeadersConfig, ResponseHeadersConfig
from edgeward.filters.headers import RequestHeaders, ResponseHeaders
from edgeward.filters.template import parse
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead, ResponseHead


def request() -> RequestHead:
    return RequestHead("GET", b"/", "/", "h", b"h", Headers([]), 0, "10.0.0.1")


RAW = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: o\r\ncontent-length: 2\r\n"


def test_add_only_response_keeps_the_received_head() -> None:
    f = ResponseHeaders(ResponseHeadersConfig(add={"x-a": "1", "x-b": "2"}).ops(), 32768)
    resp = ResponseHead(200, None, 2, RAW)
    f.on_response(request(), resp)
    assert resp.relayable()
    assert resp.wire() == [RAW, b"x-a: 1\r\nx-b: 2\r\n"]


def test_set_and_remove_cut_lines_from_the_received_head() -> None:
    cfg = ResponseHeadersConfig(remove=["Server"], set={"content-type": "application/json"})
    f = ResponseHeaders(cfg.ops(), 32768)
    resp = ResponseHead(200, None, 2, RAW)
    f.on_response(request(), resp)
    assert resp.relayable()
    assert resp.wire() == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n",
                           b"content-type: application/json\r\n"]
    assert resp.headers.items() == [("content-type", "application/json")]


def test_after_the_head_was_parsed_the_fields_change_instead() -> None:
    cfg = ResponseHeadersConfig(remove=["server"], add={"x-a": "${route}"})
    f = ResponseHeaders(cfg.ops(), 32768)
    resp = ResponseHead(200, None, 2, RAW)
    assert resp.headers.get("server") == "o"  # parsed by someone before
    req = request()
    req.route_name = "r1"
    f.on_response(req, resp)
    assert resp.headers.items() == [("content-type", "text/plain"), ("x-a", "r1")]


def test_request_budget() -> None:
    cfg = RequestHeadersConfig(add={"x-copy": "${header:x-big}"})
    f = RequestHeaders(cfg.ops(), 100)
    head = RequestHead("GET", b"/", "/", "h", b"h", Headers([(b"x-big", b"y" * 101)]), 0, "ip")
    reply = f.on_request(head)
    assert reply is not None and getattr(reply, "code", None) == "header_too_large"
    head = RequestHead("GET", b"/", "/", "h", b"h", Headers([(b"x-big", b"y" * 99)]), 0, "ip")
    assert f.on_request(head) is None
    assert head.headers.get("x-copy") == "y" * 99
    assert parse("x").constant == "x"
