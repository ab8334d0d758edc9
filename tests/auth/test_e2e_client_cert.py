"""End to end over real TLS: consumers found by the client certificate a listener verified
(`client_cert` method). One gateway process (mTLS optional), one origin and one redis-server
for the module; certificates are made at test time by a CA the listener trusts.

Found by fingerprint, by SPIFFE URI SAN, by CN; an unknown certificate is 403; no certificate
falls to the next method (api_key) or is 401; allow-lists, `rate_limit: {key: consumer}` and
a device route with `own_device_only` see the certificate's consumer; the verified certificate
still goes upstream in `server.client_cert_header`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.cluster._cluster import RedisServer, metric_value, redis_server
from tests.support.gateway import GatewayProcess, free_port
from tests.support.origin import Origin
from tests.tls.certkit import DAY, Authority, Leaf, new_key, utcnow

SPIFFE = "spiffe://example.org/ns/prod/sa/billing"
WAIT = 15.0  # longest wait for a port to answer; never a pass/fail timer

CONFIG = """
listen: {{listen}}
admin: 127.0.0.1:{admin}
redis: {{url: '{redis}'}}
devices: {{shards: 4, stream_maxlen: 1000}}
server: {{client_cert_header: x-client-cert}}
listeners:
  - address: 127.0.0.1:{tls}
    tls: {{certificates: [{{cert: {d}/server.pem, key: {d}/server.key}}],
           client_ca: {d}/clients.pem, client_auth: optional}}
consumers:
  alice: {{groups: [staff], client_certs: ['{alice_fp}']}}
  billing: {{client_certs: ['uri:{spiffe}']}}
  thermo-17: {{client_certs: ['cn:thermo-17']}}
  thermo-18: {{client_certs: ['cn:thermo-18']}}
  bob: {{api_keys: [k-bob]}}
upstreams:
  origin: {{targets: ['{origin}']}}
routes:
  - {{name: either, match: {{path_prefix: /either}}, upstream: origin,
      filters: [{{auth: {{methods: [{{client_cert: {{}}}}, {{api_key: {{}}}}]}}}}]}}
  - {{name: certs, match: {{path_prefix: /certs}}, upstream: origin,
      filters: [{{client_cert: {{}}}}]}}
  - {{name: by-cn, match: {{path_prefix: /by-cn}}, upstream: origin,
      filters: [{{client_cert: {{match: [fingerprint], consumer_by_cn: true}}}}]}}
  - {{name: staff, match: {{path_prefix: /staff}}, upstream: origin,
      filters: [{{auth: {{methods: [{{client_cert: {{}}}}], allow: {{groups: [staff]}}}}}}]}}
  - {{name: limited, match: {{path_prefix: /limited}}, upstream: origin,
      rate_limit: {{rate: 2/m, burst: 2, key: consumer}}, filters: [{{client_cert: {{}}}}]}}
  - {{name: own, match: {{path_prefix: /own/}}, devices: {{own_device_only: true}},
      filters: [{{client_cert: {{}}}}]}}
"""


@dataclass
class Site:
    gw: GatewayProcess
    tls: int
    admin: int
    ca_pem: bytes
    certs: dict[str, tuple[str, str]]

    def call(self, method: str, path: str, cert: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One request on a new mTLS connection as `cert` (None: no certificate)."""
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        if cert is not None:
            ctx.load_cert_chain(*self.certs[cert])
        conn = http.client.HTTPSConnection("127.0.0.1", self.tls, context=ctx, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            fields = {"content-type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers={**fields, **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def consumer(self, path: str, cert: str | None, **headers: str) -> str | None:
        """The consumer the origin was told about (X-Consumer-Name), or the error code."""
        status, doc = self.call("GET", path, cert, headers=headers)
        if status != 200:
            return f"{status} {doc['code']}"
        sent = [v for k, v in doc["headers"] if k.lower() == "x-consumer-name"]
        return sent[0] if sent else None


def with_uri(ca: Authority, cn: str, uri: str) -> Leaf:
    """A client certificate whose identity is a URI SAN (SPIFFE X.509-SVID style)."""
    key = new_key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(utcnow() - DAY).not_valid_after(utcnow() + DAY)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca.key, hashes.SHA256()))
    return Leaf(cert, key)


def fingerprint(leaf: Leaf) -> str:
    """As `openssl x509 -fingerprint -sha256` prints it: upper case, colons."""
    return leaf.cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Site]:
    d = tmp_path_factory.mktemp("mtls")
    servers = Authority.root("server root")
    servers.issue(["127.0.0.1"]).write(d / "server")
    clients = Authority.root("device root")
    (d / "clients.pem").write_bytes(clients.pem)
    leaves = {
        "alice": clients.issue(["alice.example"], cn="alice", client=True),
        "billing": with_uri(clients, "billing", SPIFFE),
        "thermo-17": clients.issue([], cn="thermo-17", client=True),
        "bob": clients.issue([], cn="bob", client=True),           # listed nowhere
    }
    certs = {}
    for name, leaf in leaves.items():
        cert, key = leaf.write(d / name)
        certs[name] = (str(cert), str(key))
    ports = {"tls": free_port(), "admin": free_port()}
    with Origin() as origin:
        text = CONFIG.format(d=d, origin=origin.address, redis=redis.url, spiffe=SPIFFE,
                             alice_fp=fingerprint(leaves["alice"]), **ports)
        with GatewayProcess.config(text) as gw:
            deadline = time.monotonic() + WAIT
            while not _accepts(ports["tls"]):
                assert time.monotonic() < deadline, "the TLS listener never answered"
                time.sleep(0.05)
            yield Site(gw, ports["tls"], ports["admin"], servers.pem, certs)


def test_consumers_by_fingerprint_uri_and_cn(site: Site) -> None:
    assert site.consumer("/certs/echo", "alice") == "alice"           # fingerprint
    assert site.consumer("/certs/echo", "billing") == "billing"       # SPIFFE URI SAN
    assert site.consumer("/certs/echo", "thermo-17") == "thermo-17"   # cn: listed


def test_an_unknown_certificate_is_403_and_counted(site: Site) -> None:
    before = metric_value(site.admin, "edgeward_auth_requests_total",
                          'route="certs",method="client_cert",outcome='
                          '"unknown_client_certificate"')
    assert site.consumer("/certs/echo", "bob") == "403 unknown_client_certificate"
    after = metric_value(site.admin, "edgeward_auth_requests_total",
                         'route="certs",method="client_cert",outcome='
                         '"unknown_client_certificate"')
    assert after == before + 1


def test_consumer_by_cn_needs_no_listing(site: Site) -> None:
    assert site.consumer("/by-cn/echo", "bob") == "bob"
    assert site.consumer("/by-cn/echo", "alice") == "alice"   # match: [fingerprint]
    # thermo-17 is listed by cn: only, which this route's match leaves out, but its CN is
    # its name
    assert site.consumer("/by-cn/echo", "thermo-17") == "thermo-17"
    assert site.consumer("/by-cn/echo", "billing") == "billing"


def test_no_certificate_falls_to_the_next_method_or_is_401(site: Site) -> None:
    assert site.consumer("/either/echo", None, apikey="k-bob") == "bob"
    assert site.consumer("/either/echo", "alice", apikey="k-bob") == "alice"  # first wins
    assert site.consumer("/either/echo", None) == "401 unauthenticated"
    assert site.consumer("/certs/echo", None) == "401 unauthenticated"
    # an unknown certificate does not stop a valid key from admitting
    assert site.consumer("/either/echo", "bob", apikey="k-bob") == "bob"


def test_the_certificate_still_goes_upstream_and_forgeries_do_not(site: Site) -> None:
    _, doc = site.call("GET", "/certs/echo", "billing",
                       headers={"x-client-cert": "forged", "x-consumer-name": "alice"})
    fields = [(k.lower(), v) for k, v in doc["headers"]]
    sent = [v for k, v in fields if k == "x-client-cert"]
    assert len(sent) == 1 and f"URI={SPIFFE}" in sent[0] and 'Subject="CN=billing"' in sent[0]
    assert [v for k, v in fields if k == "x-consumer-name"] == ["billing"]


def test_allow_groups_see_the_certificates_consumer(site: Site) -> None:
    assert site.consumer("/staff/echo", "alice") == "alice"
    assert site.consumer("/staff/echo", "billing") == "403 forbidden"


def test_rate_limit_by_consumer_counts_each_certificate_apart(site: Site) -> None:
    statuses = [site.call("GET", "/limited/echo", "thermo-17")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert site.call("GET", "/limited/echo", "billing")[0] == 200


def test_a_device_reaches_only_its_own_shadow(site: Site) -> None:
    mine, other = "/own/devices/thermo-17/shadow", "/own/devices/thermo-18/shadow"
    status, doc = site.call("PATCH", mine, "thermo-17", {"state": {"reported": {"t": 21.5}}})
    assert status == 200 and doc["state"]["reported"] == {"t": 21.5}
    status, doc = site.call("GET", mine, "thermo-17")
    assert status == 200 and doc["state"]["reported"] == {"t": 21.5}
    status, doc = site.call("PATCH", other, "thermo-17", {"state": {"reported": {"t": 0}}})
    assert status == 403 and doc["code"] == "forbidden"
    status, doc = site.call("GET", other, "thermo-17")
    assert status == 403 and doc["code"] == "forbidden"
    status, doc = site.call("GET", mine, "billing")
    assert status == 403 and doc["code"] == "forbidden"
    assert site.call("GET", mine, None)[0] == 401

