"""The handshake through the real listener, exchange and upstream codec on fake transports:
what goes upstream, the switch, bytes sent around the 101, pooling, refusals, accounting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edgeward.http.ws_handshake import accept_for
from support.fakes import FakeTransport, Harness, get, ok

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
CONFIG = """\
upstreams:
  app: {targets: ["10.1.0.1:8080"]}
routes:
  - {name: chat, match: {path_prefix: /chat}, upstream: app, websocket: {max_tunnels: 1}}
  - {name: app, match: {path_prefix: /}, upstream: app}
"""
HANDSHAKE = (b"GET /chat HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n\r\n")
SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: " + accept_for(KEY).encode() + b"\r\n\r\n")
CLIENT_FRAME = b"\x81\x82\x00\x00\x00\x00hi"   # masked "hi" (zero key)
SERVER_FRAME = b"\x81\x05hello"


@pytest.fixture(autouse=True)
def switchable_transports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake transports that can change protocol and half-close, as uvloop's do."""
    def set_protocol(self: FakeTransport, protocol: Any) -> None:
        self.protocol = protocol

    monkeypatch.setattr(FakeTransport, "set_protocol", set_protocol, raising=False)
    monkeypatch.setattr(FakeTransport, "can_write_eof", lambda self: True, raising=False)
    monkeypatch.setattr(FakeTransport, "write_eof",
                        lambda self: self.calls.append("write_eof"), raising=False)
    yield


def test_the_switch_relays_the_bytes_around_the_101_and_never_pools() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(HANDSHAKE + CLIENT_FRAME)  # a frame sent too early is kept for the tunnel
    [up] = h.upstreams
    [req] = up.requests()
    assert (req.method, req.target) == ("GET", "/chat")
    assert req.header("connection") == ["upgrade"] and req.header("upgrade") == ["websocket"]
    assert req.header("sec-websocket-key") == [KEY]
    assert not up.received.endswith(CLIENT_FRAME)  # not before the 101
    up.send(SWITCH + SERVER_FRAME)
    head, _, rest = c.received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    lines = head.lower().split(b"\r\n")
    assert b"upgrade: websocket" in lines and b"connection: upgrade" in lines
    assert b"sec-websocket-accept: " + accept_for(KEY).lower().encode() in lines
    assert any(line.startswith(b"x-request-id: ") for line in lines)
    assert rest == SERVER_FRAME
    assert up.received.endswith(CLIENT_FRAME)
    assert h.last().status == 101
    pool = h.pool()
    assert pool.idle == [] and pool.open == 0  # the connection left the pool for good
    book = h.factory.websocket
    assert book.routes["chat"].open == 1
    assert book.upgrades == {("chat", "upgraded"): 1}
    assert len(h.state.tunnels) == 1 and not h.state.connections
    c.send(b"\x82\x80\x00\x00\x00\x00")
    assert up.received.endswith(b"\x82\x80\x00\x00\x00\x00")
    up.close()
    c.close()
    h.run()
    assert not h.state.tunnels and book.routes["chat"].open == 0


def test_a_non_101_answer_is_relayed_and_nothing_is_reused() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(HANDSHAKE)
    [up] = h.upstreams
    up.send(ok(b"no", b"x-why: policy\r\n"))
    resp = c.response()
    assert (resp.status, resp.body) == (200, b"no")
    assert resp.header("connection") == "close"
    assert c.closed and up.closed
    assert h.pool().idle == []
    book = h.factory.websocket
    assert book.upgrades == {("chat", "upstream_refused"): 1}
    assert book.routes["chat"].open == 0  # the slot was given back


def test_a_wrong_accept_is_a_502() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(HANDSHAKE)
    [up] = h.upstreams
    up.send(SWITCH.replace(accept_for(KEY).encode(), accept_for("x" * 22 + "==").encode()))
    resp = c.response()
    assert resp.status == 502 and resp.json()["code"] == "bad_gateway"
    assert up.transport.aborted
    assert h.factory.websocket.upgrades == {("chat", "failed"): 1}


def test_a_pending_handshake_holds_its_tunnel_slot() -> None:
    h = Harness(CONFIG)
    first = h.client()
    first.send(HANDSHAKE)
    second = h.client(("10.0.0.2", 6666))
    second.send(HANDSHAKE)
    resp = second.response()
    assert resp.status == 503 and resp.json()["code"] == "websocket_limit"
    assert len(h.upstreams) == 1
    assert h.factory.websocket.upgrades == {("chat", "refused"): 1}


def test_a_101_nobody_asked_for_is_a_bad_gateway() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(get("/plain"))
    [up] = h.upstreams
    up.send(SWITCH)
    resp = c.response()
    assert resp.status == 502 and resp.json()["code"] == "bad_gateway"


def test_the_route_refusal_comes_before_any_connection() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(HANDSHAKE.replace(b"/chat", b"/plain"))
    resp = c.response()
    assert resp.status == 400 and resp.json()["code"] == "websocket_not_allowed"
    assert h.upstreams == [] and c.closed
    assert h.factory.websocket.upgrades == {("app", "refused"): 1}


def test_a_client_that_floods_before_the_101_is_cut() -> None:
    h = Harness(CONFIG)
    c = h.client()
    c.send(HANDSHAKE + b"\x82\x7f" + b"x" * (70 * 1024))
    assert c.transport.aborted
    h.run()
    # the handshake in flight is dropped with it: nothing was sent upstream
    assert all(up.received == b"" for up in h.upstreams)
    assert h.last().error_code == "client_closed"
    assert h.factory.websocket.routes["chat"].open == 0
