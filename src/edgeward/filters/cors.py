"""`cors`: cross-origin resource sharing (the Fetch standard's CORS protocol) at the edge.

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, before
any authentication filter sees it (ORDER_CORS): 204 with the Access-Control-Allow-* fields
when the origin, the method and every requested header are allowed, else 403 `cors_rejected`
saying which one was not. Other requests pass; when their Origin is allowed the response
gets Access-Control-Allow-Origin (the origin itself, or `*` when any origin is allowed and
credentials are not), -Allow-Credentials and -Expose-Headers (replacing any the upstream
sent), and, whenever the answer depends on the origin, `Vary: Origin` on every response so a
cache never serves one origin's answer to another. A disallowed origin's request goes on
without CORS fields: the browser then refuses it to the page (Fetch), as Envoy does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

from edgeward.filters.api import ORDER_CORS, Filter, Reply, Request, RequestResult, Response
from edgeward.filters.events import CORS_REJECTED, FilterEvents

# Origins remembered with their decision (pages come from few origins; bounded, then reset).
ORIGIN_CACHE: Final = 1024
_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_VARY_ORIGIN: Final = [(b"vary", b"Origin")]
_VARY_ORIGIN_LINE: Final = b"vary: Origin\r\n"
_PREFLIGHT_VARY: Final = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
_SLOT: Final = "cors:origin"


class Wildcard:
    """`https://*.example.com[:port]`: one or more host labels where the `*` is."""

    __slots__ = ("head", "tail")

    def __init__(self, pattern: str) -> None:
        self.head, _, self.tail = pattern.partition("*")  # "https://", ".example.com"

    def matches(self, origin: str) -> bool:
        head, tail = self.head, self.tail
        if len(origin) <= len(head) + len(tail) or not origin.startswith(head):
            return False
        if not origin.endswith(tail):
            return False
        middle = origin[len(head):len(origin) - len(tail)]
        return all(c in _HOST_CHARS for c in middle) and not middle.startswith(".")


class CorsPolicy:
    """Which origins, methods and headers are allowed, and the fixed field values."""

    __slots__ = ("any_origin", "exact", "wildcards", "regexes", "methods", "methods_value",
                 "headers", "headers_value", "expose", "credentials", "max_age", "varies",
                 "cache", "fixed", "replaced")

    def __init__(self, *, origins: list[str], regexes: list[Callable[[str], object]],
                 methods: list[str], headers: list[str], expose: list[str],
                 credentials: bool, max_age: int | None) -> None:
        self.any_origin = "*" in origins
        self.exact = frozenset(o.lower() for o in origins if "*" not in o)
        self.wildcards = [Wildcard(o.lower()) for o in origins if "*" in o and o != "*"]
        self.regexes = regexes
        self.methods: frozenset[str] | None = None if "*" in methods else frozenset(methods)
        self.methods_value = ", ".join(methods).encode("latin-1")
        self.headers: frozenset[str] | None = (None if "*" in headers
                                               else frozenset(h.lower() for h in headers))
        self.headers_value = ", ".join(headers).encode("latin-1")
        self.expose = ", ".join(expose).encode("latin-1")
        self.credentials = credentials
        self.max_age = str(max_age).encode() if max_age is not None else None
        # The answer depends on the origin unless it is `*` for everyone.
        self.varies = not self.any_origin or credentials
        self.cache: dict[str, bool] = {}
        # An allowed origin's response: the fields replaced, and those that never change.
        fixed: list[tuple[bytes, bytes]] = []
        if credentials:
            fixed.append((b"access-control-allow-credentials", b"true"))
        if expose:
            fixed.append((b"access-control-expose-headers", self.expose))
        self.fixed = fixed
        self.replaced = frozenset({b"access-control-allow-origin",
                                   b"access-control-allow-credentials",
                                   b"access-control-expose-headers"})

    def allows_origin(self, origin: str) -> bool:
        cache = self.cache
        hit = cache.get(origin)
        if hit is None:
            hit = self._decide(origin.lower())
            if len(cache) >= ORIGIN_CACHE:
                cache.clear()
            cache[origin] = hit
        return hit

    def _decide(self, origin: str) -> bool:
        if self.any_origin or origin in self.exact:
            return True
        for w in self.wildcards:
            if w.matches(origin):
                return True
        return any(match(origin) is not None for match in self.regexes)

    def allow_origin_value(self, origin: str) -> bytes:
        if self.any_origin and not self.credentials:
            return b"*"
        return origin.encode("latin-1")

    def refusal(self, origin: str, method: str, requested: str | None) -> str | None:
        """Why a preflight is refused, or None when it is allowed."""
        if not self.allows_origin(origin):
            return f"origin {origin} is not allowed"
        if self.methods is not None and method not in self.methods:
            return f"method {method} is not allowed"
        if requested and self.headers is not None:
            for name in requested.split(","):
                name = name.strip().lower()
                if name and name not in self.headers:
                    return f"header {name} is not allowed"
        return None


class Cors(Filter):
    order: ClassVar[int] = ORDER_CORS

    def __init__(self, policy: CorsPolicy, events: FilterEvents) -> None:
        self.name = "cors"
        self.policy = policy
        self.events = events

    def on_request(self, req: Request) -> RequestResult:
        headers = req.headers
        raw = headers.first(b"origin")  # a scan: most requests have none
        if raw is None:
            return None
        origin = raw.decode("latin-1")
        policy = self.policy
        if req.method == "OPTIONS":
            method = headers.get("access-control-request-method")
            if method is not None:
                return self._preflight(req, origin, method.strip())
        if policy.allows_origin(origin):
            req.vars[_SLOT] = origin
        return None

    def _preflight(self, req: Request, origin: str, method: str) -> Reply:
        policy = self.policy
        requested = req.headers.get("access-control-request-headers")
        reason = policy.refusal(origin, method, requested)
        if reason is not None:
            self.events.count(CORS_REJECTED, req.route_name)
            return Reply.error(403, "cors_rejected", reason)
        fields = [(b"access-control-allow-origin", policy.allow_origin_value(origin))]
        if policy.credentials:
            fields.append((b"access-control-allow-credentials", b"true"))
        fields.append((b"access-control-allow-methods",
                       method.encode("latin-1") if policy.methods is None
                       else policy.methods_value))
        if requested:
            fields.append((b"access-control-allow-headers",
                           requested.encode("latin-1") if policy.headers is None
                           else policy.headers_value))
        if policy.max_age is not None:
            fields.append((b"access-control-max-age", policy.max_age))
        fields.append((b"vary", _PREFLIGHT_VARY))
        reply = Reply(204)
        reply.fields = fields
        return reply

    def on_response(self, req: Request, resp: Response) -> None:
        policy = self.policy
        origin = req.vars.get(_SLOT)
        if isinstance(origin, str):
            # Replace what the upstream sent (two values would make browsers refuse it),
            # without taking the received head apart.
            resp.drop_fields(policy.replaced)
            fields = [(b"access-control-allow-origin", policy.allow_origin_value(origin))]
            fields.extend(policy.fixed)
            if policy.varies:
                fields.append(_VARY_ORIGIN[0])
            resp.append_block(fields, b"".join([n + b": " + v + b"\r\n" for n, v in fields]))
        elif policy.varies:
            resp.append_block(_VARY_ORIGIN, _VARY_ORIGIN_LINE)
