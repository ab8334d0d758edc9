"""The challenge responder: HTTP-01 answers and the RFC 8737 certificate."""

from __future__ import annotations

import hashlib
import ssl
import time

from cryptography import x509
from tests.tls.tlskit import connect, tls_server

from edgeward.tls.acme.challenges import ACME_IDENTIFIER, ChallengeResponder


def test_http01_answers_only_open_tokens() -> None:
    responder = ChallengeResponder()
    responder.add_http01("tok", "tok.thumb")
    assert responder.http01_response("tok") == "tok.thumb"
    assert responder.http01_path_response("/.well-known/acme-challenge/tok") == "tok.thumb"
    assert responder.http01_path_response("/.well-known/acme-challenge/other") is None
    assert responder.http01_path_response("/tok") is None
    responder.remove_http01("tok")
    assert responder.http01_response("tok") is None


def test_tls_alpn01_certificate_over_a_real_handshake() -> None:
    responder = ChallengeResponder()
    responder.add_tls_alpn01("Alpn.Example.com", "tok.thumb", time.time())
    assert responder.tls_alpn_context("other.example.com") is None
    ctx = responder.tls_alpn_context("alpn.example.com")
    assert ctx is not None
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.set_alpn_protocols(["acme-tls/1"])
    with tls_server(ctx) as srv:
        hs = connect(srv.port, client, "alpn.example.com")
    assert hs.alpn == "acme-tls/1"
    ext = hs.cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()
    san = hs.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["alpn.example.com"]
    responder.remove_tls_alpn01("alpn.example.com")
    assert responder.open_challenges() == 0
