"""The verified client certificate as filters and upstreams see it."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from tests.tls.certkit import DAY, Authority, new_key, utcnow

from edgeward.tls.peer import client_cert, describe, forwarded_value


def der_of(root: Authority, cn: str, san: list[x509.GeneralName] | None) -> bytes:
    key = new_key()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex")]))
               .issuer_name(root.cert.subject).public_key(key.public_key())
               .serial_number(7).not_valid_before(utcnow() - DAY)
               .not_valid_after(utcnow() + DAY))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(root.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_subject_san_and_hash(root: Authority) -> None:
    der = der_of(root, "svc", [x509.DNSName("svc.test"),
                               x509.UniformResourceIdentifier("spiffe://test/ns/a/sa/svc"),
                               x509.RFC822Name("ops@test")])
    cert = describe(der)
    assert cert.subject == "O=Ex,CN=svc"
    assert cert.dns == ("svc.test",) and cert.emails == ("ops@test",)
    assert cert.uris == ("spiffe://test/ns/a/sa/svc",)
    assert len(cert.sha256) == 64
    assert cert.cn == "svc"
    assert cert.forwarded == (f'Hash={cert.sha256};Subject="O=Ex,CN=svc";'
                              "URI=spiffe://test/ns/a/sa/svc;DNS=svc.test").encode()


def test_a_subject_with_two_common_names_has_none() -> None:
    key = new_key()
    root = Authority.root("two cns")
    two = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
    der = (x509.CertificateBuilder().subject_name(two).issuer_name(root.cert.subject)
           .public_key(key.public_key()).serial_number(8).not_valid_before(utcnow() - DAY)
           .not_valid_after(utcnow() + DAY).sign(root.key, hashes.SHA256())
           .public_bytes(serialization.Encoding.DER))
    assert describe(der).cn == ""  # ambiguous: never a consumer by CN


def test_forwarded_value_is_always_a_valid_field_value() -> None:
    value = forwarded_value("ab", 'CN=a "quoted" \\ é\r\n', [], ["x.test"])
    assert value == b'Hash=ab;Subject="CN=a \\"quoted\\" \\\\ %C3%A9%0D%0A";DNS=x.test'
    assert all(0x20 <= b < 0x7F for b in value)


def test_no_certificate_no_description(root: Authority) -> None:
    assert client_cert(None) is None
    assert describe(der_of(root, "bare", None)).dns == ()
