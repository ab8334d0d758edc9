"""Requests the gateway refuses, shared by the end-to-end listener tests (real sockets, a real
gateway process) and the socket-free codec tests (tests/http/h1/test_server_unit.py).

Each is refused with `status` and the JSON `code`, the connection closes, and nothing of the
request reaches an origin. For a `body` refusal the head is valid and only the body's framing
is malformed: the head may already be on its way upstream when the body breaks (a client that
sends it in pieces), never a byte of the body.
"""

from __future__ import annotations

from typing import NamedTuple

from support.rawhttp import Response

H = b"Host: gw.test\r\n"


def assert_gateway_error(resp: Response, status: int, code: str) -> dict[str, str]:
    """Every error the gateway makes: an RFC 9457 problem document (type, title, status,
    detail) with the stable code and the request id (also in a header), and a Date."""
    assert resp.status == status, resp
    assert resp.header("content-type") == "application/problem+json"
    assert (resp.header("date") or "").endswith(" GMT"), resp
    doc = resp.json()
    assert set(doc) == {"type", "title", "status", "detail", "code", "request_id"}, doc
    assert doc["type"] == "urn:edgeward:problem:" + code, doc
    assert doc["status"] == status and doc["code"] == code, doc
    assert doc["title"] and doc["detail"], doc
    assert doc["request_id"] == resp.header("x-request-id")
    return dict(doc)


class Refusal(NamedTuple):
    name: str
    raw: bytes
    status: int
    code: str
    body: bool = False  # the body's framing is what is malformed


REFUSED = [
    Refusal("cl-conflicting", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "bad_request"),
    Refusal("cl-duplicate", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, "bad_request"),
    Refusal("cl-list", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: 5, 5\r\n\r\nhello", 400, "bad_request"),
    Refusal("cl-letters", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: abc\r\n\r\nhello", 400, "bad_request"),
    Refusal("cl-negative", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: -5\r\n\r\nhello", 400, "bad_request"),
    Refusal("cl-plus", b"POST /echo HTTP/1.1\r\n" + H
            + b"Content-Length: +5\r\n\r\nhello", 400, "bad_request"),
    Refusal("te-gzip-chunked", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            501, "not_implemented"),
    Refusal("te-chunked-gzip", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400, "bad_request"),
    Refusal("te-chunked-twice", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400, "bad_request"),
    Refusal("te-two-fields", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (an
    # HTTP/1.0 hop before may have kept part of it); nginx answers 400 too.
    Refusal("te-http10", b"POST /echo HTTP/1.0\r\n" + H
            + b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    Refusal("te-identity", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: identity\r\n\r\n", 501, "not_implemented"),
    Refusal("te-and-cl", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400, "bad_request"),
    Refusal("chunk-size-malformed", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400, "bad_request", body=True),
    Refusal("chunk-terminator-bad", b"POST /echo HTTP/1.1\r\n" + H
            + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            400, "bad_request", body=True),
    Refusal("obs-fold", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n",
            400, "bad_request"),
    Refusal("ctl-in-name", b"GET /echo HTTP/1.1\r\n" + H + b"X\x01A: 1\r\n\r\n",
            400, "bad_request"),
    Refusal("ctl-in-value", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n",
            400, "bad_request"),
    Refusal("nul-in-value", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
            400, "bad_request"),
    Refusal("space-before-colon", b"GET /echo HTTP/1.1\r\nHost : gw.test\r\n\r\n",
            400, "bad_request"),
    Refusal("bare-lf", b"GET /echo HTTP/1.1\n" + H + b"\n", 400, "bad_request"),
    Refusal("host-missing", b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, "bad_request"),
    Refusal("host-duplicate", b"GET /echo HTTP/1.1\r\n" + H + b"Host: alt.test\r\n\r\n",
            400, "bad_request"),
    Refusal("host-invalid", b"GET /echo HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_request"),
    Refusal("host-empty", b"GET /echo HTTP/1.1\r\nHost:\r\n\r\n", 400, "bad_request"),
    # RFC 1035: a host name is at most 253 characters.
    Refusal("host-over-253", b"GET /echo HTTP/1.1\r\nHost: " + b"a" * 254 + b"\r\n\r\n",
            400, "bad_request"),
    Refusal("http-0.9", b"GET /echo\r\n\r\n", 505, "http_version_not_supported"),
    Refusal("http-1.2", b"GET /echo HTTP/1.2\r\n" + H + b"\r\n",
            505, "http_version_not_supported"),
    Refusal("http-2.0", b"GET /echo HTTP/2.0\r\n" + H + b"\r\n",
            505, "http_version_not_supported"),
    Refusal("upgrade-h2c", b"GET /echo HTTP/1.1\r\n" + H
            + b"Connection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", 400, "bad_request"),
    # WebSocket handshakes reach the exchange (tests/proxy/test_websocket_e2e.py); other
    # protocols are refused with the head.
    Refusal("upgrade-other", b"GET /echo HTTP/1.1\r\n" + H
            + b"Connection: Upgrade\r\nUpgrade: IRC/6.9\r\n\r\n", 501, "not_implemented"),
    Refusal("connect", b"CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n",
            501, "not_implemented"),
    # Request targets RFC 9112 §3.2 does not allow, or paths that cannot be normalised.
    Refusal("star-not-options", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    Refusal("target-relative", b"GET echo HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    Refusal("target-fragment", b"GET /echo#top HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("target-del", b"GET /echo\x7f HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    Refusal("target-query-fragment", b"GET /echo?a=1#top HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("target-other-scheme", b"GET ftp://gw.test/echo HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("target-absolute-no-host", b"GET http:///echo HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("path-above-root", b"GET /../echo HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("path-above-root-late", b"GET /a/../../echo HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    Refusal("path-bad-escape", b"GET /%zz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    Refusal("path-short-escape", b"GET /a%2 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request"),
    Refusal("path-escaped-above-root", b"GET /%2e%2e/echo HTTP/1.1\r\n" + H + b"\r\n",
            400, "bad_request"),
    # Envoy's max_headers_count default: 100 fields.
    Refusal("fields-over-max-headers", b"GET /echo HTTP/1.1\r\n" + H
            + b"".join(b"X-F%d: v\r\n" % i for i in range(100)) + b"\r\n",
            431, "header_too_large"),
]
