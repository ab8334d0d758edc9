"""TLS to upstreams end to end: a real gateway process in front of real TLS origins."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.tls.certkit import Authority

from support.gateway import GatewayProcess
from support.origin import Origin
from support.tls_origin import TlsOrigin


@dataclass
class Pki:
    dir: Path
    ca: Path          # the CA that signed the origins' certificates
    other_ca: Path    # a CA that signed nothing here
    server: ssl.SSLContext         # origin.test, no client certificate asked
    mtls_server: ssl.SSLContext    # origin.test, a client certificate from `clients` required
    gateway_cert: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = Authority.root("upstream root")
    (d / "ca.pem").write_bytes(ca.pem)
    (d / "other.pem").write_bytes(Authority.root("other root").pem)
    cert, key = ca.intermediate("upstream inter").issue(["origin.test"]).write(d / "origin")
    clients = Authority.root("gateway clients")
    (d / "clients.pem").write_bytes(clients.pem)
    gw_cert = clients.issue(["gateway.test"], cn="edgeward gateway", client=True).write(d / "gw")

    def server(mtls: bool) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if mtls:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(d / "clients.pem")
        return ctx

    return Pki(d, d / "ca.pem", d / "other.pem", server(False), server(True), gw_cert)


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.startswith(b"{") else {}


@dataclass
class Setup:
    gw: GatewayProcess
    tls: TlsOrigin
    mtls: TlsOrigin
    plain: Origin


CONFIG = """
listen: {{listen}}
upstreams:
  verified: {{targets: ["https://127.0.0.1:{tls}"], tls: {{ca: {ca}, server_name: origin.test}}}}
  wrong_ca: {{targets: ["127.0.0.1:{tls}"], tls: {{ca: {other}, server_name: origin.test}}}}
  wrong_name: {{targets: ["127.0.0.1:{tls}"], tls: {{ca: {ca}, server_name: elsewhere.test}}}}
  unverified: {{targets: ["https://127.0.0.1:{tls}"], tls: {{verify: false}}}}
  fresh: {{targets: ["127.0.0.1:{tls}"], max_idle: 0,
           tls: {{ca: {ca}, server_name: origin.test}}}}
  mtls: {{targets: ["127.0.0.1:{mtls}"], tls: {{ca: {ca}, server_name: origin.test,
                                               client_cert: {gw_cert}, client_key: {gw_key}}}}}
  mtls_anonymous: {{targets: ["127.0.0.1:{mtls}"], tls: {{ca: {ca}, server_name: origin.test}}}}
  plain: {{targets: ["http://127.0.0.1:{plain}"]}}
  probed: {{targets: ["127.0.0.1:{tls}"], tls: {{ca: {ca}, server_name: origin.test}},
            health: {{path: /status/204, interval: 200ms, timeout: 200ms}}}}
routes:
"""
ROUTES = "".join(
    f"  - {{match: {{path_prefix: /{name}/}}, upstream: {name}, "
    f"filters: [strip_prefix: /{name}]}}\n"
    for name in ("verified", "wrong_ca", "wrong_name", "unverified", "fresh", "mtls",
                 "mtls_anonymous", "plain", "probed"))


@pytest.fixture(scope="module")
def setup(pki: Pki) -> Iterator[Setup]:
    with TlsOrigin(pki.server) as tls, TlsOrigin(pki.mtls_server) as mtls, Origin() as plain:
        text = CONFIG.format(tls=tls.port, mtls=mtls.port, plain=plain.port, ca=pki.ca,
                             other=pki.other_ca, gw_cert=pki.gateway_cert[0],
                             gw_key=pki.gateway_cert[1]) + ROUTES
        with GatewayProcess.config(text) as gw:
            yield Setup(gw, tls, mtls, plain)


def test_https_target_verified_with_sni(setup: Setup) -> None:
    before = len(setup.tls.ok())
    status, body = get(setup.gw.port, "/verified/echo")
    assert status == 200 and body["target"] == "/echo"
    assert setup.tls.ok()[before].server_name == "origin.test"


@pytest.mark.parametrize("route", ["wrong_ca", "wrong_name"])
def test_a_certificate_that_does_not_verify_is_a_502(setup: Setup, route: str) -> None:
    status, body = get(setup.gw.port, f"/{route}/echo")
    assert status == 502
    assert body["code"] == "upstream_tls_error"


def test_verify_false_accepts_any_certificate(setup: Setup) -> None:
    assert get(setup.gw.port, "/unverified/echo")[0] == 200


def test_client_certificate_to_the_upstream(setup: Setup) -> None:
    status, _ = get(setup.gw.port, "/mtls/echo")
    assert status == 200
    assert any(h.peer_subject == "commonName=edgeward gateway" for h in setup.mtls.ok())
    status, body = get(setup.gw.port, "/mtls_anonymous/echo")
    assert status == 502 and body["code"] == "upstream_tls_error"


def test_new_connections_resume_the_last_session(setup: Setup) -> None:
    before = len(setup.tls.handshakes)
    for _ in range(3):
        assert get(setup.gw.port, "/fresh/echo")[0] == 200
    mine = setup.tls.handshakes[before:]
    assert len(mine) == 3  # max_idle: 0 - every request a new connection
    assert [h.reused for h in mine] == [False, True, True]


def test_tls_and_plain_pools_never_mix(setup: Setup) -> None:
    plain_mark = setup.plain.mark()
    tls_mark = len(setup.tls.handshakes)
    for _ in range(4):
        assert get(setup.gw.port, "/plain/echo")[0] == 200
        assert get(setup.gw.port, "/verified/echo")[0] == 200
    # Every byte the plain origin got is HTTP (a TLS record starts with 0x16), and every
    # connection the TLS origin got completed its handshake.
    with setup.plain.lock:
        raws = [bytes(c.raw) for c in setup.plain.connections[plain_mark[0]:]]
    assert raws and all(raw.startswith(b"GET /echo HTTP/1.1") for raw in raws)
    assert all(h.error is None for h in setup.tls.handshakes[tls_mark:])


def test_health_probes_use_the_upstreams_tls(setup: Setup) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
            r.header("user-agent") == ["edgeward-health"] for r in setup.tls.requests_since(
                (0, 0, 0))):
        time.sleep(0.05)
    probes = [r for r in setup.tls.requests_since((0, 0, 0))
              if r.header("user-agent") == ["edgeward-health"]]
    assert probes and probes[0].path == "/status/204"
    assert get(setup.gw.port, "/probed/echo")[0] == 200  # still healthy: probes pass
