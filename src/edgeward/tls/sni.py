"""Choosing a certificate by the name a client sends in SNI.

Rules (RFC 6125 section 6.4, as browsers and nginx apply them):
  - names are compared case-insensitively, a trailing dot ignored;
  - an exact name wins over a wildcard;
  - `*.example.com` covers exactly one more label: `a.example.com`, never `example.com` nor
    `a.b.example.com`; only a whole leftmost `*` label is a wildcard (`f*.example.com` is a
    plain name that matches nothing, as CA/Browser Forum rules forbid partial wildcards);
  - a name no certificate covers, and a client that sends no SNI, get the default: the
    first certificate configured;
  - when two certificates claim a name, the one listed first keeps it.
A certificate's names are its subjectAltName DNS entries; the subject CN is used only when the
certificate has no DNS subjectAltName at all (RFC 6125 6.4.4).

`SniTable` is sans-I/O and generic over what it selects (an `ssl.SSLContext` in the server;
anything in tests). `sni_callback` adapts a table to `SSLContext.sni_callback`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

T = TypeVar("T")


def normalize(name: str) -> str:
    """Lower case, no trailing dot: the form names are compared in."""
    return name.rstrip(".").lower()


def names_of(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names a certificate serves: its SAN DNS names, else its CN (RFC 6125 6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        dns = san.value.get_values_for_type(x509.DNSName)  # type: ignore[attr-defined]
        if dns:
            return tuple(dict.fromkeys(normalize(n) for n in dns))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(dict.fromkeys(normalize(str(a.value)) for a in cns))


def wildcard_key(server_name: str) -> str | None:
    """The `*.rest` pattern that would cover `server_name`, or None if none can."""
    label, dot, rest = server_name.partition(".")
    if not dot or not label or not rest:
        return None
    return "*." + rest


def covers(pattern: str, server_name: str) -> bool:
    """Whether certificate name `pattern` covers `server_name` (both normalized)."""
    if pattern == server_name:
        return True
    return pattern.startswith("*.") and wildcard_key(server_name) == pattern


class SniTable(Generic[T]):
    """Immutable map from server name to a choice; built once, read per handshake."""

    __slots__ = ("default", "_exact", "_wild")

    def __init__(self, entries: Iterable[tuple[Iterable[str], T]], default: T) -> None:
        exact: dict[str, T] = {}
        wild: dict[str, T] = {}
        for names, value in entries:
            for name in names:
                name = normalize(name)
                target = wild if name.startswith("*.") else exact
                target.setdefault(name, value)
        self.default = default
        self._exact = exact
        self._wild = wild

    @classmethod
    def of(cls, entries: list[tuple[Iterable[str], T]]) -> SniTable[T]:
        """A table whose default is the first entry's value (entries must not be empty)."""
        if not entries:
            raise ValueError("an SNI table needs at least one entry")
        return cls(entries, entries[0][1])

    def match(self, server_name: str | None) -> T | None:
        """The choice for `server_name`, or None when no name covers it."""
        if not server_name:
            return None
        name = normalize(server_name)
        found = self._exact.get(name)
        if found is not None:
            return found
        key = wildcard_key(name)
        return self._wild.get(key) if key is not None else None

    def select(self, server_name: str | None) -> T:
        """The choice for `server_name`, or the default."""
        found = self.match(server_name)
        return self.default if found is None else found

    def names(self) -> list[str]:
        """Every name the table answers for, exact names first."""
        return [*self._exact, *self._wild]

    def items(self) -> list[tuple[str, T]]:
        """(name, choice) for every name the table answers for, exact names first."""
        return [*self._exact.items(), *self._wild.items()]


Chooser = Callable[[str | None], ssl.SSLContext | None]
SniCallback = Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]


def sni_callback(choose: Chooser) -> SniCallback:
    """An `SSLContext.sni_callback` that moves the handshake to `choose(server_name)`.

    Called by OpenSSL for every ClientHello (server_name None without SNI). Once the
    connection's context is set, the handshake finishes on it even if `choose` would answer
    differently later: a reload swaps what `choose` reads, never a context in use.
    """

    def callback(ssl_object: ssl.SSLObject, server_name: str | None,
                 front: ssl.SSLContext) -> None:
        chosen = choose(server_name)
        if chosen is not None and chosen is not front:
            ssl_object.context = chosen
        return None

    return callback
