"""CertificateStore: SNI over real handshakes, reload on file change, refusal, expiry."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest
from tests.tls.certkit import DAY, Authority, Leaf, utcnow
from tests.tls.tlskit import connect, tls_server, trusting

from edgeward.tls.certs import TlsError, read_pair
from edgeward.tls.config import CertificateConfig, TlsListenerConfig
from edgeward.tls.store import CertificateStore

P = "listeners[0].tls"


def replace(path: Path, data: bytes) -> None:
    """Write beside and rename over, as cert-manager and certbot do."""
    tmp = path.with_suffix(".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def entries(tmp_path: Path, leaves: list[Leaf]) -> list[CertificateConfig]:
    out = []
    for i, leaf in enumerate(leaves):
        cert, key = leaf.write(tmp_path / f"c{i}")
        out.append(CertificateConfig(cert=str(cert), key=str(key)))
    return out


def open_store(tmp_path: Path, leaves: list[Leaf], **settings: object) -> CertificateStore:
    cfg = TlsListenerConfig(certificates=entries(tmp_path, leaves), **settings)  # type: ignore
    return CertificateStore.open(cfg, P, time.time(), settle=0.0)


def served_serial(port: int, root: Authority, name: str | None) -> int:
    client = trusting(root.pem, check_hostname=False)
    return connect(port, client, name).cert.serial_number


def test_sni_picks_exact_wildcard_and_default(tmp_path: Path, root: Authority,
                                              inter: Authority) -> None:
    default, api, wild = (inter.issue(["default.test"]), inter.issue(["api.example.com"]),
                          inter.issue(["*.example.com", "example.com"]))
    store = open_store(tmp_path, [default, api, wild])
    with tls_server(store.front) as srv:
        seen = {name: served_serial(srv.port, root, name) for name in
                ("api.example.com", "www.example.com", "example.com", "a.b.example.com",
                 "other.org", None)}
    assert seen == {"api.example.com": api.cert.serial_number,
                    "www.example.com": wild.cert.serial_number,
                    "example.com": wild.cert.serial_number,
                    "a.b.example.com": default.cert.serial_number,
                    "other.org": default.cert.serial_number,
                    None: default.cert.serial_number}


def test_hostname_verification_passes_for_each_name(tmp_path: Path, root: Authority,
                                                    inter: Authority) -> None:
    store = open_store(tmp_path, [inter.issue(["one.test"]), inter.issue(["*.two.test"])])
    with tls_server(store.front) as srv:
        for name in ("one.test", "x.two.test"):
            assert connect(srv.port, trusting(root.pem), name).version == "TLSv1.3"


def test_changed_files_are_served_after_poll(tmp_path: Path, root: Authority,
                                             inter: Authority) -> None:
    old, new = inter.issue(["a.test"]), inter.issue(["a.test", "b.test"])
    store = open_store(tmp_path, [old])
    assert store.poll(time.time()) == []
    with tls_server(store.front) as srv:
        assert served_serial(srv.port, root, "a.test") == old.cert.serial_number
        replace(tmp_path / "c0.key", new.key_pem)
        replace(tmp_path / "c0.pem", new.chain_pem)
        [result] = store.poll(time.time())
        assert result.ok and result.names == ("a.test", "b.test")
        assert result.path == f"{P}.certificates[0]"
        assert served_serial(srv.port, root, "a.test") == new.cert.serial_number
        assert served_serial(srv.port, root, "b.test") == new.cert.serial_number


def test_bad_new_pair_is_refused_and_old_keeps_serving(tmp_path: Path, root: Authority,
                                                      inter: Authority) -> None:
    old, other = inter.issue(["a.test"]), inter.issue(["a.test"])
    store = open_store(tmp_path, [old])
    replace(tmp_path / "c0.pem", other.chain_pem)       # new cert, old key: mismatch
    [result] = store.poll(time.time())
    assert not result.ok and result.names == ("a.test",)
    [problem] = result.problems
    assert problem.path == f"{P}.certificates[0].key"
    assert problem.reason.endswith(f"c0.key: does not match the certificate in "
                                   f"{tmp_path}/c0.pem (their public keys differ)")
    assert store.poll(time.time()) == []                # reported once
    with tls_server(store.front) as srv:
        assert served_serial(srv.port, root, "a.test") == old.cert.serial_number
        replace(tmp_path / "c0.key", other.key_pem)     # the key follows: now it loads
        [result] = store.poll(time.time())
        assert result.ok
        assert served_serial(srv.port, root, "a.test") == other.cert.serial_number


def test_expired_replacement_is_refused(tmp_path: Path, inter: Authority) -> None:
    store = open_store(tmp_path, [inter.issue(["a.test"])])
    stale = inter.issue(["a.test"], not_before=utcnow() - 10 * DAY, not_after=utcnow() - DAY)
    replace(tmp_path / "c0.pem", stale.chain_pem)
    replace(tmp_path / "c0.key", stale.key_pem)
    [result] = store.poll(time.time())
    assert "the certificate expired on" in result.problems[0].reason


def test_settle_waits_for_the_second_file(tmp_path: Path, inter: Authority) -> None:
    old, new = inter.issue(["a.test"]), inter.issue(["a.test"])
    cfg = TlsListenerConfig(certificates=entries(tmp_path, [old]))
    store = CertificateStore.open(cfg, P, time.time(), settle=0.5)
    now = time.time()
    replace(tmp_path / "c0.pem", new.chain_pem)
    assert store.poll(now) == []
    replace(tmp_path / "c0.key", new.key_pem)
    assert store.poll(now + 0.3) == []
    assert store.poll(now + 0.6) == []                  # the key's change restarted the wait
    [result] = store.poll(now + 0.9)
    assert result.ok


def test_handshake_in_progress_finishes_on_the_old_certificate(
        tmp_path: Path, root: Authority, inter: Authority) -> None:
    old, new = inter.issue(["a.test"]), inter.issue(["a.test"])
    store = open_store(tmp_path, [old])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = trusting(root.pem).wrap_bio(c_in, c_out, server_hostname="a.test")
    server = store.front.wrap_bio(s_in, s_out, server_side=True)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    s_in.write(c_out.read())
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()                           # ClientHello seen, certificate sent
    replace(tmp_path / "c0.pem", new.chain_pem)
    replace(tmp_path / "c0.key", new.key_pem)
    assert store.poll(time.time())[0].ok                # the swap happens mid-handshake
    c_in.write(s_out.read())
    client.do_handshake()
    s_in.write(c_out.read())
    server.do_handshake()
    der = client.getpeercert(binary_form=True)
    from cryptography import x509
    assert der is not None
    assert x509.load_der_x509_certificate(der).serial_number == old.cert.serial_number


def test_open_lists_every_problem(tmp_path: Path, inter: Authority) -> None:
    good, bad = inter.issue(["a.test"]), inter.issue(["b.test"])
    certs = entries(tmp_path, [good, bad])
    (tmp_path / "c1.key").write_bytes(good.key_pem)
    missing = CertificateConfig(cert=str(tmp_path / "gone.pem"), key=str(tmp_path / "c0.key"))
    cfg = TlsListenerConfig(certificates=[*certs, missing])
    with pytest.raises(TlsError) as err:
        CertificateStore.open(cfg, P, time.time())
    assert [p.path for p in err.value.problems] == [f"{P}.certificates[1].key",
                                                     f"{P}.certificates[2].cert"]


def test_expiry_per_name(tmp_path: Path, inter: Authority) -> None:
    soon = inter.issue(["a.test", "*.w.test"], not_after=utcnow() + 3 * DAY)
    later = inter.issue(["a.test", "b.test"], not_after=utcnow() + 30 * DAY)
    store = open_store(tmp_path, [soon, later])
    now = time.time()
    left = store.expiry(now)
    assert set(left) == {"a.test", "*.w.test", "b.test"}
    assert left["a.test"] == pytest.approx(soon.cert.not_valid_after_utc.timestamp() - now)
    assert left["b.test"] == pytest.approx(30 * 86400, abs=5)
    assert left["*.w.test"] == left["a.test"]


def test_installed_certificates_come_after_configured(tmp_path: Path, root: Authority,
                                                      inter: Authority) -> None:
    configured, acme = inter.issue(["a.test"]), inter.issue(["a.test", "new.test"])
    store = open_store(tmp_path, [configured])
    cert, key = acme.write(tmp_path / "acme")
    pair = read_pair(CertificateConfig(cert=str(cert), key=str(key)), "acme", time.time())
    store.install("acme:new.test", pair)
    with tls_server(store.front) as srv:
        assert served_serial(srv.port, root, "new.test") == acme.cert.serial_number
        assert served_serial(srv.port, root, "a.test") == configured.cert.serial_number
        assert served_serial(srv.port, root, None) == configured.cert.serial_number
        store.uninstall("acme:new.test")
        assert served_serial(srv.port, root, "new.test") == configured.cert.serial_number


def test_client_ca_reload(tmp_path: Path, root: Authority, inter: Authority) -> None:
    first, second = Authority.root("first clients"), Authority.root("second clients")
    (tmp_path / "clients.pem").write_bytes(first.pem)
    store = open_store(tmp_path, [inter.issue(["a.test"])],
                       client_ca=str(tmp_path / "clients.pem"), client_auth="required")

    def client_of(ca: Authority) -> ssl.SSLContext:
        ctx = trusting(root.pem)
        cert, key = ca.issue(["c"], client=True).write(tmp_path / "client")
        ctx.load_cert_chain(cert, key)
        return ctx

    with tls_server(store.front) as srv:
        connect(srv.port, client_of(first), "a.test")
        replace(tmp_path / "clients.pem", second.pem)
        [result] = store.poll(time.time())
        assert result.ok and result.path == f"{P}.client_ca"
        connect(srv.port, client_of(second), "a.test")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            connect(srv.port, client_of(first), "a.test")
