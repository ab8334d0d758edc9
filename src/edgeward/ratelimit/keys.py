"""Which key a request is counted under: `client_ip`, `route`, `consumer`, `header:NAME`
(also `cookie:NAME`, `query:NAME`, `path`): the shared key grammar of routing/keys.py.

`consumer` is the name of the authenticated consumer (`req.consumer`, set by an auth filter).
A missing header, cookie, query parameter or consumer falls back to the client IP (what Kong's
rate-limiting plugin does), under a distinct prefix so a client cannot share, or poison, a
header key's budget by sending a header value that looks like an address.

Keys have a bounded size: a value the client chooses (header, cookie, query parameter,
path) is replaced by its 128-bit BLAKE2b digest in hex (32 characters), so a 30 KB
`x-api-key` costs the key table, and Redis, the same as a short one, and no credential is
stored as sent; a client IP, route or consumer name is kept as it is (readable in Redis)
unless it is longer than MAX_PLAIN. 128 bits make an accidental collision of two keys
negligible (birthday bound ~2**64 keys), which is all a rate-limit key needs.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Final

from edgeward.request import RequestView
from edgeward.routing.keys import KeySpec as _Spec
from edgeward.routing.keys import parse_key

# One prefix per key space, so values from different sources never collide.
_PREFIX: Final = {"client_ip": "ip:", "route": "route:", "header": "h:", "consumer": "c:",
           "cookie": "k:", "query": "q:", "path": "p:"}
# Values the gateway itself determines (a consumer's name comes from authentication, never
# from the client), short already (an IPv6 address is at most 45
# characters); any longer one is hashed like a client-chosen value.
_PLAIN_KINDS: Final = frozenset({"client_ip", "route", "consumer"})
MAX_PLAIN: Final = 64
DIGEST_BYTES: Final = 16


def digest(value: str) -> str:
    """The fixed-size stand-in for a key value: BLAKE2b-128, hex."""
    return blake2b(value.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).hexdigest()


def _plain_or_digest(value: str) -> str:
    return value if len(value) <= MAX_PLAIN else "#" + digest(value)


class KeySpec:
    """A parsed `key:` setting. `extract(request, route)` gives the per-request key."""

    __slots__ = ("kind", "header", "_inner", "_prefix", "_hashed", "_last")

    def __init__(self, inner: _Spec) -> None:
        self._inner = inner
        self.kind = inner.kind
        self.header = inner.name or ""
        self._prefix = _PREFIX[inner.kind]
        self._hashed = inner.kind not in _PLAIN_KINDS
        # (value, key) of the last extraction: requests come in runs from one client (one
        # keep-alive connection), which then reuse one key string instead of building it.
        self._last: tuple[str, str] = ("", "")

    def extract(self, request: RequestView, route: str) -> str:
        value = self._inner.extract(request, route)
        if value:
            last = self._last
            if value == last[0]:
                return last[1]
            key = self._prefix + (digest(value) if self._hashed else _plain_or_digest(value))
            self._last = (value, key)
            return key
        return "ip:" + _plain_or_digest(request.client_ip)

    def __repr__(self) -> str:
        return f"<KeySpec {self._inner.spec}>"


def parse_key_spec(text: str) -> KeySpec:
    """`"header:X-Api-Key"` -> a KeySpec on header x-api-key; ValueError names the value."""
    return KeySpec(parse_key(text))
