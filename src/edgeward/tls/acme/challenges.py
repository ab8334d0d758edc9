"""Answers to ACME challenges, asked by the listener while the CA validates.

HTTP-01 (RFC 8555 8.3): the CA fetches http://NAME/.well-known/acme-challenge/TOKEN on port
80; the listener answers 200 with `http01_response(TOKEN)` as text/plain (or 404 for None).

TLS-ALPN-01 (RFC 8737): the CA connects to NAME:443 offering only ALPN `acme-tls/1` and
expects a self-signed certificate for NAME carrying the SHA-256 of the key authorization in
the critical acmeIdentifier extension. `tls_alpn_context(server_name)` is a `Chooser` for
`CertificateStore.challenge`: while a challenge for NAME is open it returns a context with
that certificate and ALPN `acme-tls/1`. Python's ssl module does not show the client's ALPN
offer to the SNI callback, so every handshake for NAME gets that context while the
challenge is open (seconds); HTTP-01 is preferred by default for that reason.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from edgeward.tls.certs import CertifiedKey, parse_pair
from edgeward.tls.context import load_pair
from edgeward.tls.sni import normalize

HTTP01_PREFIX = "/.well-known/acme-challenge/"
ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


class ChallengeResponder:
    """The open challenges of this process; filled by the ACME client, read by listeners."""

    def __init__(self) -> None:
        self._http01: dict[str, str] = {}
        self._tls_alpn: dict[str, ssl.SSLContext] = {}

    # HTTP-01
    def http01_response(self, token: str) -> str | None:
        """The key authorization to answer for `token`, or None (answer 404)."""
        return self._http01.get(token)

    def http01_path_response(self, path: str) -> str | None:
        """Same, from a request path; None for paths outside /.well-known/acme-challenge/."""
        if not path.startswith(HTTP01_PREFIX):
            return None
        return self.http01_response(path[len(HTTP01_PREFIX):])

    def add_http01(self, token: str, key_authorization: str) -> None:
        self._http01[token] = key_authorization

    def remove_http01(self, token: str) -> None:
        self._http01.pop(token, None)

    # TLS-ALPN-01
    def tls_alpn_context(self, server_name: str | None) -> ssl.SSLContext | None:
        """The challenge context for `server_name` while its challenge is open, else None."""
        if not server_name or not self._tls_alpn:
            return None
        return self._tls_alpn.get(normalize(server_name))

    def add_tls_alpn01(self, domain: str, key_authorization: str, now: float) -> None:
        name = normalize(domain)
        self._tls_alpn[name] = challenge_context(
            challenge_certificate(name, key_authorization, now))

    def remove_tls_alpn01(self, domain: str) -> None:
        self._tls_alpn.pop(normalize(domain), None)

    def open_challenges(self) -> int:
        return len(self._http01) + len(self._tls_alpn)


def challenge_certificate(domain: str, key_authorization: str, now: float) -> CertifiedKey:
    """RFC 8737 section 3: self-signed, SAN = domain, critical acmeIdentifier extension."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    start = datetime.datetime.fromtimestamp(now, datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(hours=1))
            .not_valid_after(start + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return parse_pair(cert.public_bytes(serialization.Encoding.PEM),
                      key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
                      cert_where="acme challenge", key_where="acme challenge",
                      path="acme", now=now)


def challenge_context(pair: CertifiedKey) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    load_pair(ctx, pair, "acme")
    return ctx
