"""`strip_prefix` and `rewrite`: the path (and Host) a request is forwarded with.

`strip_prefix: /api` forwards `/api/users` as `/users` and tells the upstream what was removed
in `X-Forwarded-Prefix: /api` (Traefik's StripPrefix convention, which frameworks read to build
their links). `rewrite` replaces a path prefix (`/api/x` -> `/v2/x`), or the whole path by a
regular expression with capture groups (RE2: linear time in the path, as Envoy's
regex_rewrite), and/or the Host. The query string always stays as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from edgeward.filters.api import ORDER_REWRITE, Filter, Request, RequestResult

_PREFIX_HEADER: Final = b"x-forwarded-prefix"


def join(prefix: str, rest: str) -> str:
    """`prefix` then `rest` with one slash between them; never empty ("/" at least)."""
    if not rest:
        return prefix or "/"
    if prefix.endswith("/") and rest.startswith("/"):
        return prefix + rest[1:]
    if not prefix.endswith("/") and not rest.startswith("/"):
        return prefix + "/" + rest
    return prefix + rest


class StripPrefix(Filter):
    order: ClassVar[int] = ORDER_REWRITE

    def __init__(self, prefix: str) -> None:
        self.name = "strip_prefix"
        self.prefix = prefix
        self.raw_prefix = prefix.encode("ascii")
        self.size = len(prefix)

    def on_request(self, req: Request) -> RequestResult:
        path = req.path
        if path.startswith(self.prefix):
            rest = path[self.size:]
            req.path = rest if rest.startswith("/") else "/" + rest
            req.headers.remove("x-forwarded-prefix")
            req.headers.append(_PREFIX_HEADER, self.raw_prefix)
        return None


class Rewrite(Filter):
    """`prefix` + `to`, or `regex` + `to` (RE2 match object's `expand`), and/or `host`."""

    order: ClassVar[int] = ORDER_REWRITE

    def __init__(self, prefix: str | None, regex: Any, to: str, host: str | None) -> None:
        self.name = "rewrite"
        self.prefix = prefix
        self.size = len(prefix) if prefix is not None else 0
        self.regex = regex  # a compiled RE2 pattern's fullmatch, or None
        self.to = to
        self.host = host
        self.raw_host = host.encode("latin-1") if host is not None else b""
        self.bare_host = _bare(host) if host is not None else ""

    def on_request(self, req: Request) -> RequestResult:
        prefix = self.prefix
        if prefix is not None:
            path = req.path
            if path.startswith(prefix):
                req.path = join(self.to, path[self.size:])
        elif self.regex is not None:
            match = self.regex(req.path)
            if match is not None:
                req.path = match.expand(self.to)
        if self.host is not None:
            req.headers.remove("host")
            req.headers.append(b"host", self.raw_host)
            req.authority = self.raw_host
            req.host = self.bare_host
        return None


def _bare(host: str) -> str:
    text = host.lower()
    if text.startswith("["):
        return text[1:text.find("]")]
    return text.partition(":")[0]
