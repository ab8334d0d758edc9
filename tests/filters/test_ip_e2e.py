"""ip over real sockets: allow and deny lists on the client address after trusted proxies."""

from __future__ import annotations

import socket

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import Response, get


def as_client(edge: Edge, host: str, address: str) -> Response:
    """A request from 127.0.0.1 (a trusted proxy) on behalf of `address`."""
    return get(edge.port, "/echo", host=host, headers=[("x-forwarded-for", address)])


def test_allow_list(edge: Edge) -> None:
    assert get(edge.port, "/echo", host="ip-allow.test").status == 200  # 127.0.0.1 itself
    assert as_client(edge, "ip-allow.test", "10.1.2.3").status == 200
    assert as_client(edge, "ip-allow.test", "2001:db8::7").status == 200
    assert as_client(edge, "ip-allow.test", "::ffff:10.9.9.9").status == 200
    refused = as_client(edge, "ip-allow.test", "192.0.2.1")
    assert refused.status == 403
    assert refused.json()["code"] == "ip_denied"
    assert as_client(edge, "ip-allow.test", "2001:db9::1").status == 403


def test_deny_wins_over_allow(edge: Edge) -> None:
    assert as_client(edge, "ip-deny.test", "10.6.5.255").status == 200
    assert as_client(edge, "ip-deny.test", "10.6.6.1").status == 403
    assert as_client(edge, "ip-deny.test", "10.6.7.0").status == 200


def test_untrusted_peer_cannot_claim_another_address(edge: Edge) -> None:
    """127.0.0.2 is not in trusted_proxies: its X-Forwarded-For is not believed."""
    raw = (b"GET /echo HTTP/1.1\r\nHost: ip-allow.test\r\nX-Forwarded-For: 10.1.2.3\r\n"
           b"Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10,
                                  source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 403 ")
    assert b'"ip_denied"' in data
