"""The opening handshake checks (RFC 6455 §4.2.1) and the accept key (§4.2.2), without sockets."""

from __future__ import annotations

import base64

import pytest

from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead
from edgeward.http.ws_handshake import (
    accept_for,
    accept_matches,
    request_problem,
    valid_key,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def handshake(*, method: str = "GET", http10: bool = False, body: int = NO_BODY,
              fields: list[tuple[bytes, bytes]] | None = None) -> RequestHead:
    if fields is None:
        fields = [(b"Sec-WebSocket-Version", b"13"), (b"Sec-WebSocket-Key", KEY.encode())]
    head = RequestHead(method, b"/chat", "/chat", "gw.test", b"gw.test",
                       Headers([(b"Host", b"gw.test"), *fields]), body, "10.0.0.1")
    head.http10 = http10
    head.upgrade = b"websocket"
    return head


def test_the_rfc_example_key_gets_the_rfc_example_accept() -> None:
    assert accept_for(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_handshake_passes() -> None:
    assert request_problem(handshake()) is None


@pytest.mark.parametrize(("head", "detail"), [
    (handshake(method="POST"), "GET"),
    (handshake(http10=True), "HTTP/1.1"),
    (handshake(body=5), "no body"),
    (handshake(fields=[(b"Sec-WebSocket-Version", b"13")]), "Sec-WebSocket-Key"),
    (handshake(fields=[(b"Sec-WebSocket-Version", b"13"), (b"Sec-WebSocket-Key", b"short")]),
     "Sec-WebSocket-Key"),
    (handshake(fields=[(b"Sec-WebSocket-Version", b"13"), (b"Sec-WebSocket-Key", KEY.encode()),
                       (b"Sec-WebSocket-Key", KEY.encode())]), "given once"),
])
def test_a_malformed_handshake_is_a_400(head: RequestHead, detail: str) -> None:
    problem = request_problem(head)
    assert problem is not None
    assert problem.code == "websocket_bad_handshake"
    assert detail in problem.detail
    assert problem.fields is None


@pytest.mark.parametrize("versions", [[], [b"8"], [b"13", b"8"], [b"14"]])
def test_another_version_is_a_426_naming_13(versions: list[bytes]) -> None:
    fields = [(b"Sec-WebSocket-Version", v) for v in versions]
    problem = request_problem(handshake(fields=[*fields, (b"Sec-WebSocket-Key", KEY.encode())]))
    assert problem is not None
    assert problem.code == "websocket_version_unsupported"
    assert problem.fields == [(b"sec-websocket-version", b"13")]


@pytest.mark.parametrize(("key", "ok"), [
    (KEY, True),
    (base64.b64encode(b"x" * 16).decode(), True),
    (base64.b64encode(b"x" * 15).decode(), False),  # 15 bytes
    (base64.b64encode(b"x" * 17).decode(), False),
    ("dGhlIHNhbXBsZSBub25jZQ", False),               # no padding
    ("dGhlIHNhbXBsZSBub25jZQ!=", False),             # not base64
    ("é" * 24, False),
])
def test_the_key_must_be_16_bytes_of_base64(key: str, ok: bool) -> None:
    assert valid_key(key) is ok


def test_the_accept_must_answer_this_key_exactly_once() -> None:
    good = accept_for(KEY)
    assert accept_matches(KEY, [good])
    assert accept_matches(KEY, [f" {good} "])
    assert not accept_matches(KEY, [])
    assert not accept_matches(KEY, [good, good])
    assert not accept_matches(KEY, [accept_for(base64.b64encode(b"y" * 16).decode())])
