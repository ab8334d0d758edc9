"""Real certificates made at test time with `cryptography`: a CA, intermediates, leaves.

    ca = Authority.root("Test Root")
    inter = ca.intermediate("Test Inter")
    leaf = inter.issue(["a.test", "*.b.test"])          # Leaf: .cert, .key, .chain
    leaf.write(tmp_path / "a")                          # a.pem (leaf + inter), a.key
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
DAY = datetime.timedelta(days=1)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_key(kind: str = "ec") -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an address (`127.0.0.1`), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Leaf:
    cert: x509.Certificate
    key: Key
    chain: list[x509.Certificate] = field(default_factory=list)   # issuers, nearest first

    @property
    def chain_pem(self) -> bytes:
        return pem(self.cert) + b"".join(pem(c) for c in self.chain)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def write(self, stem: Path) -> tuple[Path, Path]:
        cert, key = stem.with_suffix(".pem"), stem.with_suffix(".key")
        cert.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


@dataclass
class Authority:
    cert: x509.Certificate
    key: Key
    parents: list[x509.Certificate] = field(default_factory=list)

    @classmethod
    def root(cls, cn: str = "edgeward test root") -> Authority:
        key = new_key()
        now = utcnow()
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - DAY).not_valid_after(now + 3650 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return pem(self.cert)

    def intermediate(self, cn: str = "edgeward test intermediate") -> Authority:
        key = new_key()
        now = utcnow()
        cert = (self._builder(_name(cn), key, now - DAY, now + 1000 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(self.key, hashes.SHA256()))
        return Authority(cert, key, [self.cert, *self.parents])

    def _builder(self, subject: x509.Name, key: Key, not_before: datetime.datetime,
                 not_after: datetime.datetime) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False))

    def issue(self, names: list[str], *, cn: str | None = None, key: Key | None = None,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None, san: bool = True,
              client: bool = False) -> Leaf:
        key = key or new_key()
        now = utcnow()
        subject = _name(cn or (names[0] if names else "edgeward test leaf"))
        builder = self._builder(subject, key, not_before or now - DAY, not_after or now + 90 * DAY)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san and names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        # issuers up to, not including, the root
        chain = [self.cert, *self.parents[:-1]] if self.parents else []
        return Leaf(cert, key, chain)
