"""The verified client certificate of an mTLS connection, read once per connection.

OpenSSL verified the chain against `client_ca` during the handshake (a certificate that did
not verify ended the handshake, with client_auth optional as with required); what is left is
to describe the certificate for filters (`req.client_cert`) and for the upstream
(`server.client_cert_header`, in Envoy's x-forwarded-client-cert form).
"""

from __future__ import annotations

import hashlib
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from edgeward.http.message import ClientCert


def client_cert(ssl_object: object) -> ClientCert | None:
    """The certificate the client showed on `ssl_object`, or None when it showed none."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return describe(der)


def describe(der: bytes) -> ClientCert:
    cert = x509.load_der_x509_certificate(der)
    subject = cert.subject.rfc4514_string()
    dns: list[str] = []
    uris: list[str] = []
    emails: list[str] = []
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        dns = san.get_values_for_type(x509.DNSName)  # type: ignore[attr-defined]
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)  # type: ignore[attr-defined]
        emails = san.get_values_for_type(x509.RFC822Name)  # type: ignore[attr-defined]
    digest = hashlib.sha256(der).hexdigest()
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if len(cns) == 1 else ""
    return ClientCert(subject, tuple(dns), tuple(uris), tuple(emails), digest,
                      forwarded_value(digest, subject, uris, dns),
                      cn if isinstance(cn, str) else "")


def forwarded_value(digest: str, subject: str, uris: list[str], dns: list[str]) -> bytes:
    """`Hash=HEX;Subject="...";URI=...;DNS=...` (Envoy's x-forwarded-client-cert elements);
    quotes and backslashes in the subject are escaped, and any byte outside visible ASCII
    is percent-encoded so the value is always a valid field value."""
    parts = [f"Hash={digest}", 'Subject="' + subject.replace("\\", "\\\\").replace('"', '\\"')
             + '"']
    parts.extend(f"URI={u}" for u in uris)
    parts.extend(f"DNS={d}" for d in dns)
    return _visible(";".join(parts))


def _visible(text: str) -> bytes:
    out = bytearray()
    for byte in text.encode("utf-8"):
        if 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out.extend(b"%%%02X" % byte)
    return bytes(out)
