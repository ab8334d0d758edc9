"""Reading and validating a certificate chain with its private key.

Everything a user can get wrong with a certificate/key pair is found here, before OpenSSL
sees it, and reported as a `Problem` that names the config key and the file:

    listeners[0].tls.certificates[1].key: /etc/edgeward/api.key: does not match the
        certificate in /etc/edgeward/api.pem (its public key differs)

The checks: the file is readable; it holds PEM (a DER file is named as such); the key is a
private key and not encrypted; the key belongs to the first certificate (and if it belongs to
a later one, that the leaf must come first); each certificate is issued by the next one
(signature checked); no certificate of the chain has expired or is not yet valid at `now`.

`parse_pair` is pure (bytes in, `CertifiedKey` or `TlsError` out); `read_pair` reads files.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from edgeward.structs import Problem
from edgeward.tls.config import CertificateConfig
from edgeward.tls.sni import names_of

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY_MARK = b"PRIVATE KEY-----"
# Largest certificate or key file read: a chain of a dozen 4096-bit certificates is ~25 KiB.
MAX_PEM_FILE = 1024 * 1024

# Key types TLS servers use (DSA is refused: no TLS 1.3 signature scheme, deprecated).
PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


class TlsError(Exception):
    """TLS material was refused; `problems` says where (key path) and why, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{p.path}: {p.reason}" for p in problems))


@dataclass(frozen=True, eq=False)
class CertifiedKey:
    """A validated chain (leaf first) and its key, as PEM, with what SNI and metrics need."""

    chain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate
    names: tuple[str, ...]
    not_before: float
    not_after: float
    source: str

    def seconds_left(self, now: float) -> float:
        """Seconds until notAfter at wall-clock `now` (negative once expired)."""
        return self.not_after - now


def read_pem_file(file: str, path: str) -> bytes:
    """The bytes of `file`, or TlsError naming `path` and the OS reason."""
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_PEM_FILE + 1)
    except OSError as exc:
        raise TlsError([Problem(path, f"{file}: cannot read: {exc.strerror or exc}")]) from None
    if len(data) > MAX_PEM_FILE:
        raise TlsError([Problem(path, f"{file}: larger than {MAX_PEM_FILE} bytes")])
    return data


def read_pair(cfg: CertificateConfig, path: str, now: float) -> CertifiedKey:
    """Read and validate the pair `cfg` describes (files or inline PEM) at `path`."""
    cert_path, key_path = _join(path, "cert"), _join(path, "key")
    problems: list[Problem] = []
    chain = key = b""
    cert_where, key_where = cfg.cert or "cert_pem", cfg.key or "key_pem"
    for attr, where_path, inline in (("cert", cert_path, cfg.cert_pem),
                                     ("key", key_path, cfg.key_pem)):
        file = getattr(cfg, attr)
        try:
            data = inline.encode() if inline is not None else read_pem_file(file, where_path)
        except TlsError as exc:
            problems.extend(exc.problems)
            continue
        if attr == "cert":
            chain = data
        else:
            key = data
    if problems:
        raise TlsError(problems)
    return parse_pair(chain, key, cert_where=cert_where, key_where=key_where, path=path, now=now)


def parse_pair(chain_pem: bytes, key_pem: bytes, *, cert_where: str, key_where: str, path: str,
               now: float) -> CertifiedKey:
    """Validate a PEM chain and key; `*_where` name their origin (a file) in messages."""
    cert_path, key_path = _join(path, "cert"), _join(path, "key")
    chain = parse_chain(chain_pem, cert_where, cert_path)
    key = parse_key(key_pem, key_where, key_path)
    problems = _match_problems(chain, key, cert_where, key_where, key_path)
    problems += _order_problems(chain, cert_where, cert_path)
    problems += _validity_problems(chain, cert_where, cert_path, now)
    if problems:
        raise TlsError(problems)
    leaf = chain[0]
    return CertifiedKey(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        leaf=leaf, names=names_of(leaf),
        not_before=leaf.not_valid_before_utc.timestamp(),
        not_after=leaf.not_valid_after_utc.timestamp(), source=cert_where)


def parse_chain(data: bytes, where: str, path: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, in file order; TlsError when there are none."""
    if _PEM_CERT not in data:
        hint = " (it looks like DER: convert it with `openssl x509 -inform der`)" \
            if data[:1] == b"\x30" else ""
        if _PEM_KEY_MARK in data:
            hint = " (it holds a private key: are cert and key swapped?)"
        raise TlsError([Problem(path, f"{where}: no PEM certificate found{hint}")])
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError([Problem(path, f"{where}: not a valid PEM certificate: {exc}")]) from None


def parse_key(data: bytes, where: str, path: str) -> PrivateKey:
    """The private key of a PEM file; TlsError with the reason otherwise."""
    if _PEM_KEY_MARK not in data:
        hint = " (it holds a certificate: are cert and key swapped?)" if _PEM_CERT in data else ""
        raise TlsError([Problem(path, f"{where}: no PEM private key found{hint}")])
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError([Problem(path, f"{where}: the key is encrypted; give an unencrypted key "
                                      "(openssl pkey -in KEY -out KEY.plain)")]) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError([Problem(path, f"{where}: not a usable private key: {exc}")]) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise TlsError([Problem(path, f"{where}: unsupported key type {type(key).__name__}")])
    return key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _match_problems(chain: list[x509.Certificate], key: PrivateKey, cert_where: str,
                    key_where: str, key_path: str) -> list[Problem]:
    mine = _spki(key.public_key())
    if _spki(chain[0].public_key()) == mine:
        return []
    for i, cert in enumerate(chain[1:], start=2):
        if _spki(cert.public_key()) == mine:
            return [Problem(key_path, f"{key_where}: matches certificate {i} of {cert_where}, "
                                      "not the first; the server's own certificate must come "
                                      "first, then its issuers")]
    return [Problem(key_path, f"{key_where}: does not match the certificate in {cert_where} "
                              "(their public keys differ)")]


def _order_problems(chain: list[x509.Certificate], where: str, path: str) -> list[Problem]:
    for i in range(len(chain) - 1):
        child, parent = chain[i], chain[i + 1]
        if not _issued_by(child, parent):
            return [Problem(path, f"{where}: chain order: certificate {i + 2} "
                                  f"({parent.subject.rfc4514_string()}) did not issue "
                                  f"certificate {i + 1} ({child.subject.rfc4514_string()}); "
                                  "list the certificate first, then each issuer in turn")]
    return []


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _validity_problems(chain: list[x509.Certificate], where: str, path: str,
                       now: float) -> list[Problem]:
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    for i, cert in enumerate(chain):
        which = "the certificate" if i == 0 else f"certificate {i + 1} (an issuer)"
        if cert.not_valid_after_utc < when:
            return [Problem(path, f"{where}: {which} expired on "
                                  f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")]
        if cert.not_valid_before_utc > when:
            return [Problem(path, f"{where}: {which} is not valid before "
                                  f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")]
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

