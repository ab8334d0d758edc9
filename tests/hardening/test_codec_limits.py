"""Issue 18's low codec items and issue 9's underscore finding, over real sockets.

- No cap on the number of request fields: 3,700 empty fields were forwarded. Now more than
  `server.max_headers` (100, Envoy's `max_headers_count`) get 431 `header_too_large`.
- The Host validation cache kept values of ~32 KB. Now a host name over 253 characters (RFC
  1035) is a 400 `bad_request`.
- `Transfer_Encoding: chunked` was forwarded as an ordinary field; origins that fold `_` into
  `-` (CGI, WSGI) would frame the body by it. Now field names with `_` are dropped
  (`server.headers_with_underscores: drop`, nginx's default), or refused (`reject`), or kept
  (`allow`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import RawConnection, get

CONFIG = """\
listen: {listen}
SERVER
upstreams:
  app: {targets: ["ORIGIN"]}
routes:
  - {name: all, match: {path_prefix: /}, upstream: app}
"""


def _gateway(origin: Origin, server: str = "") -> GatewayProcess:
    return GatewayProcess.config(
        CONFIG.replace("ORIGIN", origin.address).replace("SERVER", server))


@pytest.fixture(scope="module")
def gw(origin: Origin) -> Iterator[GatewayProcess]:
    with _gateway(origin) as g:
        yield g


def _raw(gw: GatewayProcess, head: bytes) -> tuple[int, str]:
    with RawConnection(gw.port) as conn:
        conn.send(head)
        _, resp = conn.final_response()
        return resp.status, resp.json().get("code", "") if resp.status >= 400 else ""


def test_too_many_fields_are_refused(gw: GatewayProcess) -> None:
    many = b"".join(b"X-F%d: 1\r\n" % i for i in range(101))
    assert _raw(gw, b"GET /echo HTTP/1.1\r\nHost: a.test\r\n" + many + b"\r\n") == (
        431, "header_too_large")
    some = b"".join(b"X-F%d: 1\r\n" % i for i in range(98))
    assert _raw(gw, b"GET /echo HTTP/1.1\r\nHost: a.test\r\n" + some + b"\r\n")[0] == 200


def test_a_host_name_over_253_characters_is_refused(gw: GatewayProcess) -> None:
    long_host = b"a" * 254
    assert _raw(gw, b"GET /echo HTTP/1.1\r\nHost: " + long_host + b"\r\n\r\n") == (
        400, "bad_request")
    ok_host = b".".join([b"a" * 63] * 3) + b".example"
    assert _raw(gw, b"GET /echo HTTP/1.1\r\nHost: " + ok_host + b"\r\n\r\n")[0] == 200


def test_underscore_names_are_dropped_by_default(gw: GatewayProcess) -> None:
    resp = get(gw.port, "/echo", [("Transfer_Encoding", "chunked"), ("X_Api_Key", "k")])
    assert resp.status == 200
    names = [n.lower() for n, _ in resp.json()["headers"]]
    assert "transfer_encoding" not in names and "x_api_key" not in names


def test_underscore_policy_reject_and_allow(origin: Origin) -> None:
    with _gateway(origin, "server: {headers_with_underscores: reject}") as gw:
        assert _raw(gw, b"GET /echo HTTP/1.1\r\nHost: a.test\r\nX_Api_Key: k\r\n\r\n") == (
            400, "bad_request")
    with _gateway(origin, "server: {headers_with_underscores: allow}") as gw:
        resp = get(gw.port, "/echo", [("X_Api_Key", "k")])
        assert ["X_Api_Key", "k"] in resp.json()["headers"]
