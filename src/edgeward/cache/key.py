"""Cache keys: what makes two requests the same response, compiled once per route.

    base    = host + path [+ "?" + query]      what purges name: `api.example.com/users/7`
    primary = base + NUL + [method] + the configured fields' values + [consumer]
    key     = primary + SOH + the values of the fields the stored response's Vary names

The query is the one received (`query: ["*"]`, nginx's $request_uri), none (`[]`), or the
listed parameters only, sorted by name (Fastly's and Varnish's query sorting; a tracking
parameter that is not listed does not split the cache).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlencode

from edgeward.http.message import RequestHead

ALL_QUERY: Final = "*"
_SEP: Final = "\x00"
_VARY: Final = "\x01"


class KeySpec:
    __slots__ = ("method", "all_query", "params", "fields", "consumer")

    def __init__(self, *, method: bool = False, query: tuple[str, ...] = (ALL_QUERY,),
                 fields: tuple[str, ...] = (), consumer: bool = False) -> None:
        self.method = method
        self.all_query = ALL_QUERY in query
        self.params = frozenset(q for q in query if q != ALL_QUERY)
        self.fields = tuple(f.lower() for f in fields)
        self.consumer = consumer

    def base(self, req: RequestHead) -> str:
        return base_of(req.host, req.path, self.query(req.query_string))

    def query(self, query: str) -> str:
        if not query or self.all_query:
            return query
        if not self.params:
            return ""
        kept = sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                      if k in self.params)
        return urlencode(kept)

    def primary(self, req: RequestHead, base: str) -> str:
        parts = [base]
        if self.method:
            parts.append(req.method)
        headers = req.headers
        for name in self.fields:
            parts.append(",".join(headers.get_all(name)))
        if self.consumer:
            consumer = req.consumer
            parts.append(consumer.name if consumer is not None else "")
        return _SEP.join(parts) if len(parts) > 1 else base + _SEP


def base_of(host: str, path: str, query: str) -> str:
    return f"{host}{path}?{query}" if query else host + path


def variant(primary: str, req: RequestHead, vary: tuple[str, ...]) -> str:
    """The full key of `req` among the variants of `primary` that vary on `vary`."""
    if not vary:
        return primary
    headers = req.headers
    return primary + _VARY + _SEP.join(_normal(headers.get_all(name)) for name in vary)


def _normal(values: list[str]) -> str:
    """A field's values as one comparable string (RFC 9111 §4.1: whitespace and combining
    of lines normalised)."""
    return ",".join(v.strip() for value in values for v in value.split(","))


def vary_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(sorted({n.strip().lower() for n in value.split(",") if n.strip()}))
