"""An HTTPS client for end-to-end tests: one request on a new TLS connection to 127.0.0.1,
with the SNI and the trust a test chooses, reporting the response and what was negotiated."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509


@dataclass
class Fetched:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cert: x509.Certificate
    reused: bool
    session: ssl.SSLSession | None

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def client_context(ca_pem: bytes, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def fetch(port: int, path: str = "/", *, server_name: str | None, ctx: ssl.SSLContext,
          headers: list[tuple[str, str]] | None = None, host: str | None = None,
          session: ssl.SSLSession | None = None) -> Fetched:
    """GET `path` over a new connection (Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name, session=session) as tls:
            lines = [f"GET {path} HTTP/1.1", f"Host: {host or server_name or 'localhost'}",
                     "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers or []]
            tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            resp = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
            resp.begin()
            body = resp.read()
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return Fetched(resp.status, resp.getheaders(), body,
                           x509.load_der_x509_certificate(der), tls.session_reused,
                           tls.session)


def names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.DNSName))
