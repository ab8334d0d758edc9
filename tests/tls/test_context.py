"""Server and client contexts against real handshakes on 127.0.0.1."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest
from tests.tls.certkit import Authority, Leaf
from tests.tls.tlskit import connect, tls_server, trusting

from edgeward.tls.certs import TlsError
from edgeward.tls.config import CertificateConfig, TlsListenerConfig, UpstreamTlsConfig
from edgeward.tls.context import client_context, server_name
from edgeward.tls.store import CertificateStore


def listener(tmp_path: Path, leaf: Leaf, **settings: object) -> TlsListenerConfig:
    cert, key = leaf.write(tmp_path / "srv")
    return TlsListenerConfig(certificates=[CertificateConfig(cert=str(cert), key=str(key))],
                             **settings)  # type: ignore[arg-type]


@pytest.fixture
def leaf(inter: Authority) -> Leaf:
    return inter.issue(["a.test"])


def front(cfg: TlsListenerConfig) -> ssl.SSLContext:
    return CertificateStore.open(cfg, "t", time.time()).front


def test_defaults_negotiate_tls13_and_h2(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    client = trusting(root.pem)
    client.set_alpn_protocols(["h2", "http/1.1"])
    with tls_server(front(listener(tmp_path, leaf))) as srv:
        hs = connect(srv.port, client, "a.test")
    assert (hs.version, hs.alpn) == ("TLSv1.3", "h2")
    assert hs.cert.serial_number == leaf.cert.serial_number


def test_server_options_follow_mozilla_intermediate(tmp_path: Path, leaf: Leaf) -> None:
    ctx = front(listener(tmp_path, leaf))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    for flag in (ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION, ssl.OP_SINGLE_ECDH_USE):
        assert flag in ctx.options
    assert ssl.OP_CIPHER_SERVER_PREFERENCE not in ctx.options
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == set(TlsListenerConfig.__dataclass_fields__["ciphers"].default.split(":"))


def test_tls12_client_gets_its_preferred_aead(tmp_path: Path, root: Authority,
                                             leaf: Leaf) -> None:
    client = trusting(root.pem)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384")
    with tls_server(front(listener(tmp_path, leaf))) as srv:
        hs = connect(srv.port, client, "a.test")
    assert (hs.version, hs.cipher) == ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305")


def test_rsa_certificate_with_dhe_only_client(tmp_path: Path, inter: Authority,
                                              root: Authority) -> None:
    from tests.tls.certkit import new_key
    rsa_leaf = inter.issue(["r.test"], key=new_key("rsa"))
    client = trusting(root.pem)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    with tls_server(front(listener(tmp_path, rsa_leaf))) as srv:
        hs = connect(srv.port, client, "r.test")
    assert hs.cipher == "DHE-RSA-AES128-GCM-SHA256"


@pytest.mark.parametrize(("ceiling", "ciphers"), [
    (ssl.TLSVersion.TLSv1_1, None),                         # old protocol
    (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA"),     # CBC suite
    (ssl.TLSVersion.TLSv1_2, "AES128-GCM-SHA256"),          # RSA key exchange
])
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_weak_clients_are_refused(tmp_path: Path, root: Authority, leaf: Leaf,
                                  ceiling: ssl.TLSVersion, ciphers: str | None) -> None:
    client = trusting(root.pem)
    client.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    client.maximum_version = ceiling
    if ciphers:
        client.set_ciphers(ciphers + ":@SECLEVEL=0")
    else:
        client.set_ciphers("ALL:@SECLEVEL=0")
    with tls_server(front(listener(tmp_path, leaf))) as srv:
        with pytest.raises(ssl.SSLError):
            connect(srv.port, client, "a.test")


def test_min_version_13_refuses_tls12(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    client = trusting(root.pem)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_server(front(listener(tmp_path, leaf, min_version="1.3"))) as srv:
        with pytest.raises(ssl.SSLError):
            connect(srv.port, client, "a.test")
        assert connect(srv.port, trusting(root.pem), "a.test").version == "TLSv1.3"


def test_tickets_off_means_no_resumption(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    client = trusting(root.pem)
    for tickets, reused in ((True, True), (False, False)):
        with tls_server(front(listener(tmp_path, leaf, session_tickets=tickets))) as srv:
            first = connect(srv.port, client, "a.test")
            again = connect(srv.port, client, "a.test", session=first.session)
        assert again.reused is reused


def test_bad_cipher_list_names_the_key(tmp_path: Path, leaf: Leaf) -> None:
    with pytest.raises(TlsError, match=r"t\.ciphers: OpenSSL accepts none of these ciphers"):
        front(listener(tmp_path, leaf, ciphers="NOPE-NOTHING"))


# --- mTLS -------------------------------------------------------------------------------------

def mtls(tmp_path: Path, leaf: Leaf, ca: Authority, auth: str) -> ssl.SSLContext:
    (tmp_path / "clients.pem").write_bytes(ca.pem)
    return front(listener(tmp_path, leaf, client_ca=str(tmp_path / "clients.pem"),
                          client_auth=auth))


def with_client_cert(tmp_path: Path, root: Authority, ca: Authority) -> ssl.SSLContext:
    client = trusting(root.pem)
    cert, key = ca.issue(["client one"], client=True).write(tmp_path / "client")
    client.load_cert_chain(cert, key)
    return client


def test_required_client_certificate(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    clients, strangers = Authority.root("clients"), Authority.root("strangers")
    with tls_server(mtls(tmp_path, leaf, clients, "required")) as srv:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            connect(srv.port, trusting(root.pem), "a.test")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            connect(srv.port, with_client_cert(tmp_path, root, strangers), "a.test")
        connect(srv.port, with_client_cert(tmp_path, root, clients), "a.test")
        time.sleep(0.1)
    assert [s.peer is not None for s in srv.seen] == [False, False, True]
    assert srv.seen[2].peer and srv.seen[2].peer["subject"] == ((("commonName", "client one"),),)


def test_optional_client_certificate(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    clients = Authority.root("clients")
    with tls_server(mtls(tmp_path, leaf, clients, "optional")) as srv:
        connect(srv.port, trusting(root.pem), "a.test")
        connect(srv.port, with_client_cert(tmp_path, root, clients), "a.test")
        time.sleep(0.1)
    assert [s.peer is not None for s in srv.seen] == [False, True]


def test_client_ca_that_is_not_pem_names_the_key(tmp_path: Path, leaf: Leaf) -> None:
    (tmp_path / "clients.pem").write_text("hello")
    with pytest.raises(TlsError, match=r"t\.client_ca: .*clients\.pem: no PEM certificate"):
        front(listener(tmp_path, leaf, client_ca=str(tmp_path / "clients.pem"),
                       client_auth="required"))


# --- upstream client contexts -----------------------------------------------------------------

def ca_file(tmp_path: Path, ca: Authority) -> str:
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    return str(tmp_path / "ca.pem")


def test_upstream_verifies_chain_and_name(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    with tls_server(front(listener(tmp_path, leaf))) as srv:
        good = UpstreamTlsConfig(ca=ca_file(tmp_path, root))
        ctx = client_context(good, "u", time.time())
        assert connect(srv.port, ctx, server_name(good, "a.test")).alpn == "http/1.1"
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            connect(srv.port, ctx, "b.test")
        named = UpstreamTlsConfig(ca=ca_file(tmp_path, root), server_name="a.test")
        assert server_name(named, "10.0.0.1") == "a.test"
        system = client_context(UpstreamTlsConfig(), "u", time.time())
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(srv.port, system, "a.test")
        lax = client_context(UpstreamTlsConfig(verify=False), "u", time.time())
        assert connect(srv.port, lax, "whatever").version == "TLSv1.3"


def test_upstream_client_certificate(tmp_path: Path, root: Authority, leaf: Leaf) -> None:
    clients = Authority.root("clients")
    cert, key = clients.issue(["gw"], client=True).write(tmp_path / "gw")
    cfg = UpstreamTlsConfig(ca=ca_file(tmp_path, root), client_cert=str(cert),
                            client_key=str(key))
    with tls_server(mtls(tmp_path, leaf, clients, "required")) as srv:
        connect(srv.port, client_context(cfg, "u", time.time()), "a.test")
        time.sleep(0.1)
    assert srv.seen[0].peer and srv.seen[0].peer["subject"] == ((("commonName", "gw"),),)


def test_upstream_errors_name_client_keys(tmp_path: Path, inter: Authority) -> None:
    one, two = inter.issue(["gw"], client=True), inter.issue(["gw"], client=True)
    cert, _ = one.write(tmp_path / "one")
    _, key = two.write(tmp_path / "two")
    cfg = UpstreamTlsConfig(client_cert=str(cert), client_key=str(key))
    with pytest.raises(TlsError, match=r"u\.client_key: .*two\.key: does not match"):
        client_context(cfg, "u", time.time())
    missing = UpstreamTlsConfig(ca=str(tmp_path / "nope.pem"))
    with pytest.raises(TlsError, match=r"u\.ca: .*nope\.pem: cannot read"):
        client_context(missing, "u", time.time())
