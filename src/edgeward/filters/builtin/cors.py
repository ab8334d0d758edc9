"""Config of `cors` (docs/filters.md, "CORS").

    cors: {allow_origins: ["https://app.example", "https://*.example.com"],
           allow_methods: [GET, POST], allow_credentials: true, max_age: 10m}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from edgeward.filters.config import BuildContext, register
from edgeward.filters.cors import Cors, CorsPolicy
from edgeward.routing.regex import compile_fullmatch
from edgeward.values import Duration, doc

# The Fetch standard's CORS-safelisted methods: they need no preflight, and anything beyond
# them is a choice the route makes (Envoy and Traefik allow none by default; Kong and APISIX
# allow all, which this gateway does not do silently).
DEFAULT_ALLOW_METHODS: Final = ("GET", "HEAD", "POST")
# `*`: the preflight's requested headers are echoed (Kong's default; APISIX `*`). Which origin
# may call is what protects an API; listing headers is a tightening a route may add.
DEFAULT_ALLOW_HEADERS: Final = ("*",)

_ORIGIN: Final = re.compile(
    r"(https?)://(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Z]+")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, kw_only=True)
class CorsConfig:
    allow_origins: list[str] = field(
        default_factory=list,
        metadata=doc('origins allowed: exact ("https://app.example"), "https://*.example.com" '
                     '(any subdomain), or "*" (any; never with credentials)'))
    allow_origin_regex: list[str] = field(
        default_factory=list,
        metadata=doc("RE2 patterns an origin may match whole instead (Envoy safe_regex)"))
    allow_methods: list[str] = field(
        default_factory=lambda: list(DEFAULT_ALLOW_METHODS),
        metadata=doc('methods a preflight may ask for; "*" any (Fetch safelist by default)'))
    allow_headers: list[str] = field(
        default_factory=lambda: list(DEFAULT_ALLOW_HEADERS),
        metadata=doc('request headers a preflight may ask for; "*" echoes them (Kong)'))
    expose_headers: list[str] = field(
        default_factory=list,
        metadata=doc("response headers the page may read beyond the safelisted ones"))
    allow_credentials: bool = field(
        default=False, metadata=doc("let cookies and HTTP auth be sent (never with *)"))
    max_age: Duration | None = field(
        default=None,
        metadata=doc("how long browsers keep a preflight; null sends none (browsers then "
                     "keep it 5 s)"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.allow_origins and not self.allow_origin_regex:
            out.append(("allow_origins", "give at least one origin (or allow_origin_regex)"))
        for i, origin in enumerate(self.allow_origins):
            reason = _origin_problem(origin, self.allow_credentials)
            if reason:
                out.append((f"allow_origins[{i}]", reason))
        for i, pattern in enumerate(self.allow_origin_regex):
            try:
                compile_fullmatch(pattern)
            except ValueError as exc:
                out.append((f"allow_origin_regex[{i}]", str(exc)))
        for i, method in enumerate(self.allow_methods):
            if method != "*" and _METHOD.fullmatch(method) is None:
                out.append((f"allow_methods[{i}]",
                            f"not a method (upper-case token): {method!r}"))
        for key in ("allow_headers", "expose_headers"):
            for i, name in enumerate(getattr(self, key)):
                if name == "*" and key == "expose_headers" and self.allow_credentials:
                    out.append((f"{key}[{i}]", "* is taken literally with credentials "
                                               "(Fetch); list the headers"))
                elif name != "*" and _TOKEN.fullmatch(name) is None:
                    out.append((f"{key}[{i}]", f"not a header name: {name!r}"))
        if self.max_age is not None and self.max_age < 0:
            out.append(("max_age", "must not be negative"))
        return out


def _origin_problem(origin: str, credentials: bool) -> str | None:
    if origin == "*":
        if credentials:
            return ('"*" cannot be used with allow_credentials (Fetch forbids it); list '
                    "the origins")
        return None
    if origin == "null":
        return ('"null" is the origin of sandboxed and file pages, which any site can make; '
                "it is not accepted")
    if _ORIGIN.fullmatch(origin) is None:
        hint = " (no path or trailing slash)" if origin.count("/") > 2 else ""
        return (f"expected scheme://host[:port] in lower case{hint}, or "
                f"scheme://*.domain, got {origin!r}")
    return None


def _make(config: CorsConfig, ctx: BuildContext) -> Cors:
    regexes: list[Any] = [compile_fullmatch(p) for p in config.allow_origin_regex]
    policy = CorsPolicy(
        origins=config.allow_origins, regexes=regexes, methods=config.allow_methods,
        headers=config.allow_headers, expose=config.expose_headers,
        credentials=config.allow_credentials,
        max_age=round(config.max_age) if config.max_age is not None else None)
    return Cors(policy, ctx.events)


register("cors", CorsConfig, _make)
