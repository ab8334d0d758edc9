"""Header rules shared by both sides of the proxy: hop-by-hop names, token checks, request ids."""

from __future__ import annotations

import ipaddress
import os
import re
from itertools import count

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

# Headers the gateway sets itself on the way to the upstream; any client copy is dropped
# (X-Forwarded-* are kept only when the peer is a trusted proxy, see ForwardedPolicy).
GATEWAY_SET = frozenset(
    {b"x-request-id", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
     b"content-length", b"expect"}
)

_REQUEST_ID_OK = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_HOST_OK = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]{1,5})?")


def connection_tokens(value: bytes) -> set[bytes]:
    """Lower-case tokens of a Connection header: those names are hop-by-hop for this message."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


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
        self._prefix = os.urandom(8).hex()
        self._next = count(1).__next__

    def new(self) -> str:
        return f"{self._prefix}-{self._next():x}"

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
