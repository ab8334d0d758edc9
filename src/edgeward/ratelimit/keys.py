"""Which key a request is counted under: `client_ip`, `route`, `consumer`, `header:NAME`
(also `cookie:NAME`, `query:NAME`, `path`): the shared key grammar of routing/keys.py.

A missing header, cookie, query parameter or consumer falls back to the client IP (what Kong's
rate-limiting plugin does), under a distinct prefix so a client cannot share, or poison, a
header key's budget by sending a header value that looks like an address.
"""

from __future__ import annotations

from typing import Final

from edgeward.request import RequestView
from edgeward.routing.keys import KeySpec as _Spec
from edgeward.routing.keys import parse_key

# One prefix per key space, so values from different sources never collide.
_PREFIX: Final = {"client_ip": "ip:", "route": "route:", "header": "h:", "consumer": "c:",
           "cookie": "k:", "query": "q:", "path": "p:"}


class KeySpec:
    """A parsed `key:` setting. `extract(request, route)` gives the per-request key."""

    __slots__ = ("kind", "header", "_inner", "_prefix", "_last")

    def __init__(self, inner: _Spec) -> None:
        self._inner = inner
        self.kind = inner.kind
        self.header = inner.name or ""
        self._prefix = _PREFIX[inner.kind]
        # (value, key) of the last extraction: requests come in runs from one client (one
        # keep-alive connection), which then reuse one key string instead of building it.
        self._last: tuple[str, str] = ("", "")

    def extract(self, request: RequestView, route: str) -> str:
        value = self._inner.extract(request, route)
        if value:
            last = self._last
            if value == last[0]:
                return last[1]
            key = self._prefix + value
            self._last = (value, key)
            return key
        return "ip:" + request.client_ip

    def __repr__(self) -> str:
        return f"<KeySpec {self._inner.spec}>"


def parse_key_spec(text: str, consumer_header: str = "x-consumer-id") -> KeySpec:
    """`"header:X-Api-Key"` -> a KeySpec on header x-api-key; ValueError names the value."""
    return KeySpec(parse_key(text, consumer_header=consumer_header))
