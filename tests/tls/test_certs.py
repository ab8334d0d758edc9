"""Certificate/key validation: every mistake gets the key path, the file and the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tests.tls.certkit import DAY, Authority, key_pem, new_key, pem, utcnow

from edgeward.tls.certs import TlsError, read_pair
from edgeward.tls.config import CertificateConfig

P = "listeners[0].tls.certificates[1]"


def refused(cfg: CertificateConfig, now: float | None = None) -> str:
    with pytest.raises(TlsError) as err:
        read_pair(cfg, P, time.time() if now is None else now)
    return str(err.value)


def files(tmp_path: Path, chain: bytes, key: bytes) -> CertificateConfig:
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "c.key").write_bytes(key)
    return CertificateConfig(cert=str(tmp_path / "c.pem"), key=str(tmp_path / "c.key"))


def test_good_pair_is_read_with_names_and_validity(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test", "*.b.test"])
    pair = read_pair(files(tmp_path, leaf.chain_pem, leaf.key_pem), P, time.time())
    assert pair.names == ("a.test", "*.b.test")
    assert pair.not_after == leaf.cert.not_valid_after_utc.timestamp()
    assert 89 * 86400 < pair.seconds_left(time.time()) <= 90 * 86400
    assert pair.chain_pem == leaf.chain_pem


def test_inline_pem_is_accepted(inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    cfg = CertificateConfig(cert_pem=leaf.chain_pem.decode(), key_pem=leaf.key_pem.decode())
    assert read_pair(cfg, P, time.time()).names == ("a.test",)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    cfg = CertificateConfig(cert=str(tmp_path / "none.pem"), key=str(tmp_path / "none.key"))
    text = refused(cfg)
    assert f"{P}.cert: {tmp_path}/none.pem: cannot read: No such file or directory" in text
    assert f"{P}.key: {tmp_path}/none.key: cannot read: No such file or directory" in text


def test_der_certificate_is_recognised(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    text = refused(files(tmp_path, der, leaf.key_pem))
    assert f"{P}.cert: {tmp_path}/c.pem: no PEM certificate found (it looks like DER" in text


def test_swapped_cert_and_key_are_recognised(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    text = refused(files(tmp_path, leaf.key_pem, leaf.chain_pem))
    assert "are cert and key swapped?" in text


def test_encrypted_key_is_refused(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    text = refused(files(tmp_path, leaf.chain_pem, key_pem(leaf.key, b"secret")))
    assert f"{P}.key: {tmp_path}/c.key: the key is encrypted" in text


def test_garbage_key_is_refused(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    bad = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    assert f"{P}.key: {tmp_path}/c.key: not a usable private key" in refused(
        files(tmp_path, leaf.chain_pem, bad))


def test_key_of_another_certificate_is_refused(tmp_path: Path, inter: Authority) -> None:
    leaf, other = inter.issue(["a.test"]), inter.issue(["a.test"])
    text = refused(files(tmp_path, leaf.chain_pem, other.key_pem))
    assert (f"{P}.key: {tmp_path}/c.key: does not match the certificate in {tmp_path}/c.pem"
            in text)


def test_leaf_not_first_is_explained(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["a.test"])
    swapped = pem(inter.cert) + pem(leaf.cert)
    text = refused(files(tmp_path, swapped, leaf.key_pem))
    assert "matches certificate 2 of" in text and "must come first" in text


def test_chain_out_of_order_is_refused(tmp_path: Path, root: Authority) -> None:
    mid = root.intermediate("mid one")
    low = mid.intermediate("mid two")
    leaf = low.issue(["a.test"])
    wrong = pem(leaf.cert) + pem(mid.cert) + pem(low.cert)
    text = refused(files(tmp_path, wrong, leaf.key_pem))
    assert f"{P}.cert: {tmp_path}/c.pem: chain order: certificate 2 (CN=mid one)" in text
    assert "did not issue certificate 1 (CN=a.test)" in text


def test_foreign_issuer_with_same_name_is_caught(tmp_path: Path) -> None:
    a, b = Authority.root("same"), Authority.root("same")
    leaf = a.issue(["a.test"])
    text = refused(files(tmp_path, leaf.chain_pem + b.pem, leaf.key_pem))
    # a.issue under a root has no intermediates; appending another root named like the issuer
    # must fail the signature check, not pass on the name alone
    assert "chain order: certificate 2 (CN=same) did not issue" in text


def test_expired_and_not_yet_valid(tmp_path: Path, inter: Authority) -> None:
    old = inter.issue(["a.test"], not_before=utcnow() - 30 * DAY, not_after=utcnow() - DAY)
    text = refused(files(tmp_path, old.chain_pem, old.key_pem))
    assert f"{P}.cert: {tmp_path}/c.pem: the certificate expired on" in text
    future = inter.issue(["a.test"], not_before=utcnow() + DAY, not_after=utcnow() + 9 * DAY)
    assert "is not valid before" in refused(files(tmp_path, future.chain_pem, future.key_pem))


def test_rsa_keys_work(tmp_path: Path, inter: Authority) -> None:
    leaf = inter.issue(["r.test"], key=new_key("rsa"))
    assert read_pair(files(tmp_path, leaf.chain_pem, leaf.key_pem), P, time.time()).names == (
        "r.test",)
