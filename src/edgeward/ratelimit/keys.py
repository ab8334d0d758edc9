"""Which key a request is counted under: `client_ip`, `route`, `consumer` or `header:NAME`.

A missing header or consumer falls back to the client IP (what Kong's rate-limiting plugin
does), under a distinct prefix so a client cannot share, or poison, a header key's budget by
sending a header value that looks like an address.
"""

from __future__ import annotations

import re
from typing import Literal

from edgeward.request import RequestView

KeyKind = Literal["client_ip", "route", "consumer", "header"]

# RFC 9110 field-name: a token.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class KeySpec:
    """A parsed `key:` setting. `extract(request, route)` gives the per-request key."""

    __slots__ = ("kind", "header", "_consumer_header")

    def __init__(self, kind: KeyKind, header: str = "", consumer_header: str = "") -> None:
        self.kind = kind
        self.header = header
        self._consumer_header = consumer_header

    def extract(self, request: RequestView, route: str) -> str:
        kind = self.kind
        if kind == "client_ip":
            return "ip:" + request.client_ip
        if kind == "route":
            return "route:" + route
        name = self.header if kind == "header" else self._consumer_header
        value = request.header(name)
        if value:
            return ("h:" if kind == "header" else "c:") + value
        return "ip:" + request.client_ip

    def __repr__(self) -> str:
        if self.kind == "header":
            return f"<KeySpec header:{self.header}>"
        return f"<KeySpec {self.kind}>"


def parse_key_spec(text: str, consumer_header: str = "x-consumer-id") -> KeySpec:
    """`"header:X-Api-Key"` -> KeySpec("header", "x-api-key"); ValueError names the value."""
    if text == "client_ip":
        return KeySpec("client_ip")
    if text == "route":
        return KeySpec("route")
    if text == "consumer":
        return KeySpec("consumer", consumer_header=consumer_header.lower())
    if text.startswith("header:"):
        name = text[len("header:") :].strip()
        if not _TOKEN.match(name):
            raise ValueError(f"header name in {text!r} is not a valid HTTP field name")
        return KeySpec("header", header=name.lower())
    raise ValueError(
        f"must be client_ip, route, consumer or header:NAME, got {text!r}"
    )
