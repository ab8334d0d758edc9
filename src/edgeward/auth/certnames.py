"""Client-certificate identities as consumers list them (`client_certs:`), normalised once.

A consumer names the certificates that are it, each one way:

    AB:CD:...:EF  or  sha256:abcd...ef   the SHA-256 fingerprint of the certificate's DER: 64 hex
                                         digits, colons and case as `openssl x509 -fingerprint
                                         -sha256` prints them, or without (pins one certificate)
    uri:spiffe://example.org/ns/a/sa/b   a URI subjectAltName (SPIFFE IDs), compared exactly
    dns:thermo-17.devices.example        a DNS subjectAltName, compared without case or final dot
    email:ops@example.org                an rfc822Name subjectAltName; the domain without case
    cn:thermo-17                         the subject's common name, compared exactly

`parse(text)` gives (kind, normalised value) or raises ValueError with the reason; the index
(directory.py) keeps the normalised values, and `presented(cert)` normalises what a verified
certificate shows the same way, so a lookup is a dict read.
"""

from __future__ import annotations

import string
from typing import Final

# The kinds, most specific first: the order in which `match` (the method's config) looks.
KINDS: Final = ("fingerprint", "uri", "dns", "email", "cn")
PREFIXES: Final = {"sha256": "fingerprint", "uri": "uri", "dns": "dns", "email": "email",
                   "cn": "cn"}
_HEX: Final = frozenset(string.hexdigits)


def fingerprint(text: str) -> str:
    """64 hex digits (colons allowed, any case) -> lower-case hex; ValueError otherwise."""
    hexa = text.replace(":", "").strip()
    if len(hexa) != 64 or not set(hexa) <= _HEX:
        raise ValueError("a fingerprint is the SHA-256 of the certificate: 64 hex digits, "
                         "colons allowed (openssl x509 -noout -fingerprint -sha256)")
    return hexa.lower()


def dns_name(text: str) -> str:
    """DNS names compare without case and without the final dot (RFC 4343, RFC 5280 §7.2)."""
    return text.lower().rstrip(".")


def email(text: str) -> str:
    """RFC 5280 §7.5: the local part is compared exactly, the domain without case."""
    local, at, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}" if at else text


def parse(text: str) -> tuple[str, str]:
    """`client_certs` entry -> (kind, normalised value); ValueError says why not."""
    prefix, colon, rest = text.partition(":")
    kind = PREFIXES.get(prefix.lower()) if colon else None
    if kind is None:
        if len(text.replace(":", "")) == 64:
            return "fingerprint", fingerprint(text)
        known = ", ".join(f"{p}:" for p in PREFIXES)
        raise ValueError(f"expected a SHA-256 fingerprint (64 hex digits) or one of {known}")
    if kind == "fingerprint":
        return kind, fingerprint(rest)
    if not rest or rest != rest.strip():
        raise ValueError(f"{prefix}: must be followed by the name, without spaces around it")
    if kind == "dns":
        return kind, dns_name(rest)
    if kind == "email":
        if "@" not in rest:
            raise ValueError("email: must be followed by an address (local@domain)")
        return kind, email(rest)
    return kind, rest


def check(text: str) -> str | None:
    """Why `text` is not a `client_certs` entry (None when it is)."""
    try:
        parse(text)
    except ValueError as exc:
        return str(exc)
    return None
