"""The request-key grammar shared by balancer `hash_on`, split `percent_of.key`, rate-limit `key`.

A key spec names one string read from a request:

  client_ip        the peer address (or the trusted X-Forwarded-For hop) as the shell reports it
  header:NAME      first value of header NAME (name matched case-insensitively)
  cookie:NAME      value of cookie NAME (exact name)
  query:NAME       first value of query parameter NAME (exact name)
  path             the request path without query
  route            the name of the matched route (one shared key per route)
  consumer         the authenticated consumer's name (`req.consumer`, set by an auth filter;
                   never a header, which any client could send)

`parse_key(spec)` validates once at config time and returns a compiled `KeySpec` whose
`extract(req, route_name)` does one attribute read or one lookup per request. `extract`
returns None when the request does not carry the key (no such header/cookie/parameter);
callers decide what "absent" means (a split condition is false, a limiter uses a shared bucket).
"""

from __future__ import annotations

import re
from typing import Final

from edgeward.request import RequestView

# RFC 9110 §5.6.2 token: the characters allowed in a header field name (and, per RFC 6265 §4.1.1,
# in a cookie name).
_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

KINDS_WITH_NAME: Final = ("header", "cookie", "query")
KINDS_WITHOUT_NAME: Final = ("client_ip", "path", "route", "consumer")


class KeySpec:
    """A compiled key spec. `spec` is the text it was parsed from (for messages and repr)."""

    __slots__ = ("spec", "kind", "name")

    def __init__(self, spec: str, kind: str, name: str | None) -> None:
        self.spec = spec
        self.kind = kind
        self.name = name

    def extract(self, req: RequestView, route_name: str) -> str | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<KeySpec {self.spec}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySpec) and (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


class _ClientIp(KeySpec):
    __slots__ = ()

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return req.client_ip


class _Path(KeySpec):
    __slots__ = ()

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return req.path


class _Route(KeySpec):
    __slots__ = ()

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return route_name


class _Consumer(KeySpec):
    __slots__ = ()

    def extract(self, req: RequestView, route_name: str) -> str | None:
        consumer = req.consumer
        return consumer.name if consumer is not None else None


class _Header(KeySpec):

    __slots__ = ("_lname",)

    def __init__(self, spec: str, kind: str, name: str) -> None:
        super().__init__(spec, kind, name)
        self._lname = name.lower()

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return req.header(self._lname)


class _Cookie(KeySpec):
    __slots__ = ("_cname",)

    def __init__(self, spec: str, kind: str, name: str) -> None:
        super().__init__(spec, kind, name)
        self._cname = name

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return req.cookie(self._cname)


class _Query(KeySpec):
    __slots__ = ("_qname",)

    def __init__(self, spec: str, kind: str, name: str) -> None:
        super().__init__(spec, kind, name)
        self._qname = name

    def extract(self, req: RequestView, route_name: str) -> str | None:
        return req.query(self._qname)


def parse_key(spec: str) -> KeySpec:
    """Compile `spec` ("client_ip", "header:x-user-id", ...). Raises ValueError with the reason."""
    if not isinstance(spec, str):
        raise ValueError(f"a key must be a string like client_ip or header:x-user-id, got {spec!r}")
    kind, sep, name = spec.partition(":")
    if kind in KINDS_WITHOUT_NAME:
        if sep:
            raise ValueError(f"key {spec!r}: {kind} takes no name (write just {kind!r})")
        if kind == "client_ip":
            return _ClientIp(spec, kind, None)
        if kind == "path":
            return _Path(spec, kind, None)
        if kind == "route":
            return _Route(spec, kind, None)
        return _Consumer(spec, kind, None)
    if kind in KINDS_WITH_NAME:
        if not sep or not name:
            raise ValueError(f"key {spec!r}: {kind} needs a name, e.g. {kind}:x-user-id")
        if kind == "query":
            if any(c in name for c in "&=# ") or not name.isprintable():
                raise ValueError(
                    f"key {spec!r}: a query parameter name cannot contain '&', '=', '#', "
                    f"spaces or control characters"
                )
            return _Query(spec, kind, name)
        if not _TOKEN_RE.match(name):
            raise ValueError(
                f"key {spec!r}: {name!r} is not a valid {kind} name (letters, digits and "
                f"!#$%&'*+-.^_`|~ only)"
            )
        if kind == "header":
            return _Header(spec, kind, name.lower())
        return _Cookie(spec, kind, name)
    known = ", ".join([*KINDS_WITHOUT_NAME, *(f"{k}:NAME" for k in KINDS_WITH_NAME)])
    raise ValueError(f"unknown key {spec!r} (known: {known})")
