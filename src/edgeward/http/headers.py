"""Header rules shared by both sides of the proxy: hop-by-hop names, token checks, request ids."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Final

# RFC 9110 §7.6.1: connection-specific fields never forwarded. `proxy-connection` is a
# non-standard name some clients still send; `te` and `trailer` handling follows nginx/Envoy
# (`te: trailers` is the only TE that matters end to end and the gateway re-adds nothing).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

# RFC 9110 §6.5.1: fields a trailer section must not carry, because they frame or route the
# message, modify or authenticate the request, describe the content or control caching; and
# the names the gateway itself owns. Received trailers with these names are dropped both ways:
# an origin (or client) that merges trailers into the header section would otherwise read a
# field the gateway never checked, after every filter had run.
TRAILERS_FORBIDDEN: Final = frozenset(
    {
        b"content-length", b"transfer-encoding", b"host", b"connection", b"keep-alive",
        b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect", b"max-forwards",
        b"range", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since",
        b"if-range", b"authorization", b"proxy-authorization", b"proxy-authenticate",
        b"www-authenticate", b"cookie", b"set-cookie", b"content-type", b"content-encoding",
        b"content-range", b"content-location", b"cache-control", b"age", b"expires",
        b"location", b"retry-after", b"vary", b"date", b"x-forwarded-for",
        b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix", b"x-real-ip",
        b"forwarded", b"x-request-id", b"traceparent", b"tracestate",
    }
)


def keep_trailer(trailers: list[tuple[bytes, bytes]] | None, name: bytes,
                 value: bytes) -> list[tuple[bytes, bytes]] | None:
    """`trailers` with a received trailer field added, unless it may not be relayed (see
    TRAILERS_FORBIDDEN; names with `_` neither)."""
    if name.lower() in TRAILERS_FORBIDDEN or b"_" in name:
        return trailers
    if trailers is None:
        return [(name, value)]
    trailers.append((name, value))
    return trailers


# What the gateway does with a header, by name; the kinds a response can carry come first
# (<= KIND_REQUEST_ID).
KIND_PLAIN: Final = 0             # forwarded as is
KIND_CONTENT_LENGTH: Final = 1
KIND_TRANSFER_ENCODING: Final = 2
KIND_CONNECTION: Final = 3
KIND_UPGRADE: Final = 4
KIND_HOP: Final = 5               # other hop-by-hop names: dropped
KIND_REQUEST_ID: Final = 6        # the gateway sets its own
KIND_HOST: Final = 7
KIND_EXPECT: Final = 8
KIND_XFF: Final = 9
KIND_XFP: Final = 10
KIND_XFH: Final = 11
KIND_TRACEPARENT: Final = 12
KIND_X_REAL_IP: Final = 13
KIND_FORWARDED: Final = 14

# Fields a client sends that the gateway owns (the forwarding identity it sends upstream):
# a codec keeps them among the fields and marks which were present, so the exchange looks
# for them only when there are some. One bit each.
OWN_XFF: Final = 1
OWN_XFP: Final = 2
OWN_XFH: Final = 4
OWN_TRACEPARENT: Final = 8
OWN_X_REAL_IP: Final = 16
OWN_FORWARDED: Final = 32
OWNED_BIT: Final = (0,) * KIND_XFF + (OWN_XFF, OWN_XFP, OWN_XFH, OWN_TRACEPARENT, OWN_X_REAL_IP,
                                      OWN_FORWARDED)

# (kind, lower-case name, usual spelling). No two share a length and first letter, so a
# table indexed by those two finds the only candidate; most names have none, and are told
# apart without hashing them (httptools hands over fresh bytes objects, whose hash is not
# cached: a dict lookup per header costs more than the rest of its handling).
_SPECIAL: Final[tuple[tuple[int, bytes, bytes], ...]] = (
    (KIND_CONTENT_LENGTH, b"content-length", b"Content-Length"),
    (KIND_TRANSFER_ENCODING, b"transfer-encoding", b"Transfer-Encoding"),
    (KIND_CONNECTION, b"connection", b"Connection"),
    (KIND_UPGRADE, b"upgrade", b"Upgrade"),
    (KIND_HOP, b"keep-alive", b"Keep-Alive"),
    (KIND_HOP, b"proxy-connection", b"Proxy-Connection"),
    (KIND_HOP, b"te", b"TE"),
    (KIND_HOP, b"proxy-authenticate", b"Proxy-Authenticate"),
    (KIND_HOP, b"proxy-authorization", b"Proxy-Authorization"),
    (KIND_REQUEST_ID, b"x-request-id", b"X-Request-Id"),
    (KIND_HOST, b"host", b"Host"),
    (KIND_EXPECT, b"expect", b"Expect"),
    (KIND_XFF, b"x-forwarded-for", b"X-Forwarded-For"),
    (KIND_XFP, b"x-forwarded-proto", b"X-Forwarded-Proto"),
    (KIND_XFH, b"x-forwarded-host", b"X-Forwarded-Host"),
    (KIND_TRACEPARENT, b"traceparent", b"traceparent"),
    (KIND_X_REAL_IP, b"x-real-ip", b"X-Real-IP"),
    (KIND_FORWARDED, b"forwarded", b"Forwarded"),
)
_MAX_SPECIAL_LEN: Final = 19


def _slots() -> bytes:
    table = bytearray((_MAX_SPECIAL_LEN + 1) * 32)
    for i, (_, lower, _) in enumerate(_SPECIAL):
        slot = len(lower) * 32 + (lower[0] & 31)
        assert table[slot] == 0, lower
        table[slot] = i + 1
    assert {lower for _, lower, _ in _SPECIAL} >= HOP_BY_HOP
    return bytes(table)


_SLOTS: Final = _slots()


def header_kind(name: bytes) -> int:
    """The KIND_* of a header name, in any case."""
    n = len(name)
    if n > _MAX_SPECIAL_LEN or n == 0:
        return KIND_PLAIN
    slot = _SLOTS[n * 32 + (name[0] & 31)]  # & 31: the same for upper and lower case
    if slot == 0:
        return KIND_PLAIN
    kind, lower, usual = _SPECIAL[slot - 1]
    if name == usual or name == lower or name.lower() == lower:
        return kind
    return KIND_PLAIN


_REQUEST_ID_OK = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# A host name is at most 253 characters (RFC 1035); a Host value adds at most a port.
_HOST_OK = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._~!$&'()*+,;=%-]{1,253})(?::[0-9]{1,5})?")


# `Connection:` tokens that name no header still present (keep-alive is hop-by-hop anyway):
# a Connection header of only these leaves the other headers as they are.
PLAIN_CONNECTION: Final = frozenset({b"keep-alive"})
_CLOSE_TOKENS: Final = frozenset({b"close"})


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """Lower-case tokens of a Connection header: those names are hop-by-hop for this message."""
    if value == b"keep-alive" or value == b"Keep-Alive":
        return PLAIN_CONNECTION
    if value == b"close" or value == b"Close":
        return _CLOSE_TOKENS
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def valid_host(value: bytes) -> bool:
    return bool(value) and _HOST_OK.fullmatch(value) is not None


def split_host(value: bytes) -> str:
    """Lower-case host without port: b"API.example.com:8080" -> "api.example.com"."""
    text = value.decode("latin-1").lower()
    if text.startswith("["):
        return text[1 : text.find("]")]
    host, _, _ = text.partition(":")
    return host


class RequestIds:
    """Request ids: the client's when valid, else a per-worker random prefix plus a counter.

    Unique across workers and restarts (64 random bits per worker start) without a uuid4
    per request.
    """

    __slots__ = ("_prefix", "_next")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex() + "-"
        self._next = 0

    def new(self) -> str:
        self._next += 1
        return self._prefix + str(self._next)

    @staticmethod
    def acceptable(value: bytes) -> bool:
        return _REQUEST_ID_OK.fullmatch(value) is not None


class ForwardedPolicy:
    """Which peers may hand us an X-Forwarded-For chain that we extend instead of replace."""

    __slots__ = ("_networks", "_cache")

    def __init__(self, trusted: list[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in trusted]
        self._cache: dict[str, bool] = {}

    def trusts(self, peer_ip: str) -> bool:
        if not self._networks:
            return False
        hit = self._cache.get(peer_ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(peer_ip)
            except ValueError:
                hit = False
            else:
                hit = any(addr in n for n in self._networks)
            if len(self._cache) < 4096:
                self._cache[peer_ip] = hit
        return hit
