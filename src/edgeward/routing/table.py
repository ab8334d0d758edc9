"""RouteTable: the compiled route match, built once per config snapshot.

Precedence (the most specific route that accepts the request wins):

 1. Host tier: a route listing the request's exact host, then routes whose wildcard
    `*.suffix` matches, longest suffix first, then routes for any host (no host, or "*").
 2. Within a host tier, path tier: exact `path`, then `path_prefix` longest first, then
    `path_regex` in config order, then routes with no path condition.
 3. Among routes with the same host and path key (same exact path, same prefix string), config
    order: the first whose methods/headers conditions hold.

A tier only wins if one of its routes accepts the request: a request to api.example.com/x whose
exact-host routes all fail on path/method/header falls through to `*.example.com` routes, then
to any-host routes (Traefik/Kong style over one flat list, unlike Envoy virtual hosts, which do
not fall through). Likewise an exact-path route that fails on method falls through to prefixes.

Cost: one dict lookup for the exact host, one per dot of the host for wildcards, then per host
group one dict lookup for the exact path and one slice + dict lookup per DISTINCT prefix length
no longer than the path (bounded by the path length, not by the number of routes). Only regex
routes are scanned linearly (in their host group); method/header predicates run on the few
routes that share a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from edgeward.request import RequestView
from edgeward.routing.config import MatchConfig
from edgeward.routing.regex import Matcher, compile_fullmatch

T = TypeVar("T")

# application/grpc, application/grpc+proto, application/grpc-web-text...
GRPC_CONTENT_TYPE = "application/grpc"


class _Route(Generic[T]):
    """One compiled route: its value and the conditions not resolved by the index."""

    __slots__ = ("value", "order", "methods", "headers", "present", "regex", "grpc")

    def __init__(self, value: T, order: int, match: MatchConfig) -> None:
        self.value = value
        self.order = order
        self.methods: frozenset[str] | None = (
            frozenset(m.upper() for m in match.methods) if match.methods else None
        )
        self.headers: tuple[tuple[str, str], ...] = tuple(
            (k.lower(), v) for k, v in match.headers.items()
        )
        self.present: tuple[str, ...] = tuple(h.lower() for h in match.header_present)
        self.regex: Matcher | None = (
            compile_fullmatch(match.path_regex) if match.path_regex is not None else None
        )
        self.grpc = match.grpc is not None  # the content-type must be gRPC's (or gRPC-Web's)

    def accepts(self, req: RequestView) -> bool:
        methods = self.methods
        if methods is not None and req.method not in methods:
            return False
        for name, value in self.headers:
            if req.header(name) != value:
                return False
        for name in self.present:
            if req.header(name) is None:
                return False
        if self.grpc:
            content_type = req.header("content-type")
            return content_type is not None and content_type.startswith(GRPC_CONTENT_TYPE)
        return True


def _first(routes: tuple[_Route[T], ...], req: RequestView) -> _Route[T] | None:
    # A tuple, not a Sequence: compiled, the loop indexes it instead of iterating generically.
    for r in routes:
        if r.accepts(req):
            return r
    return None


class _PathIndex(Generic[T]):
    """The routes of one host group, indexed by path key."""

    __slots__ = ("exact", "prefixes", "lengths", "first_length", "regex", "anypath")

    def __init__(self, routes: Sequence[tuple[MatchConfig, _Route[T]]]) -> None:
        exact: dict[str, list[_Route[T]]] = {}
        prefixes: dict[str, list[_Route[T]]] = {}
        regex: list[_Route[T]] = []
        anypath: list[_Route[T]] = []
        for m, r in routes:  # already in config order
            if m.grpc is not None:
                key = m.grpc.path()
                if m.grpc.method is not None:
                    exact.setdefault(key, []).append(r)
                else:
                    prefixes.setdefault(key, []).append(r)
            elif m.path is not None:
                exact.setdefault(m.path, []).append(r)
            elif m.path_prefix is not None:
                prefixes.setdefault(m.path_prefix, []).append(r)
            elif m.path_regex is not None:
                regex.append(r)
            else:
                anypath.append(r)
        self.exact = {k: tuple(v) for k, v in exact.items()}
        self.prefixes = {k: tuple(v) for k, v in prefixes.items()}
        self.lengths = tuple(sorted({len(k) for k in prefixes}, reverse=True))  # longest first
        # first_length[n]: index in `lengths` of the first prefix length <= n (a path of n
        # characters skips the longer ones); paths longer than every prefix start at 0.
        self.first_length = tuple(
            sum(1 for length in self.lengths if length > n)
            for n in range(self.lengths[0] + 1 if self.lengths else 0))
        self.regex = tuple(regex)
        self.anypath = tuple(anypath)

    def find(self, req: RequestView, path: str) -> _Route[T] | None:
        routes = self.exact.get(path)
        if routes is not None and (r := _first(routes, req)) is not None:
            return r
        lengths = self.lengths
        if lengths:
            n = len(path)
            first = self.first_length
            prefixes = self.prefixes
            for k in range(first[n] if n < len(first) else 0, len(lengths)):
                routes = prefixes.get(path[:lengths[k]])
                if routes is not None and (r := _first(routes, req)) is not None:
                    return r
        for r in self.regex:
            if r.regex is not None and r.regex(path) is not None and r.accepts(req):
                return r
        return _first(self.anypath, req)


class RouteTable(Generic[T]):
    """Built from an ordered list of (MatchConfig, value); `match(req)` returns a value or None.

    MatchConfigs are assumed valid (passed `check()`); the table compiles regexes again (RE2,
    see routing/regex.py) and raises ValueError if one does not compile.
    """

    __slots__ = ("_exact_hosts", "_wild_hosts", "_wild_min", "_wild_max", "_any_host", "_size",
                 "_catch_all")

    def __init__(self, routes: Sequence[tuple[MatchConfig, T]]) -> None:
        exact: dict[str, list[tuple[MatchConfig, _Route[T]]]] = {}
        wild: dict[str, list[tuple[MatchConfig, _Route[T]]]] = {}
        anyhost: list[tuple[MatchConfig, _Route[T]]] = []
        for order, (m, value) in enumerate(routes):
            r = _Route(value, order, m)
            for pat in dict.fromkeys(m.host_patterns()):  # dedupe, keep order
                if pat == "*":
                    anyhost.append((m, r))
                elif pat.startswith("*."):
                    wild.setdefault(pat[1:], []).append((m, r))  # key ".example.com"
                else:
                    exact.setdefault(pat, []).append((m, r))
        self._exact_hosts = {h: _PathIndex(rs) for h, rs in exact.items()}
        self._wild_hosts = {s: _PathIndex(rs) for s, rs in wild.items()}
        # Shortest and longest wildcard suffix (".example.com"): only the dots of a host that
        # leave a suffix of a length in between can start a match.
        self._wild_min = min((len(s) for s in wild), default=0)
        self._wild_max = max((len(s) for s in wild), default=0)
        self._any_host: _PathIndex[T] | None = _PathIndex(anyhost) if anyhost else None
        self._size = len(routes)
        # A table of one route for any host, any method and any path under "/" (`edgeward
        # proxy`, or a config with a single catch-all route) answers without a lookup.
        self._catch_all: _Route[T] | None = None
        if len(routes) == 1 and len(anyhost) == 1 and not exact and not wild:
            m, r = anyhost[0]
            if (m.path is None and m.path_regex is None and m.path_prefix in (None, "/")
                    and r.methods is None and not r.headers and not r.present
                    and not r.grpc):
                self._catch_all = r

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"<RouteTable routes={self._size} exact_hosts={len(self._exact_hosts)} "
            f"wildcard_hosts={len(self._wild_hosts)} any_host={self._any_host is not None}>"
        )

    def match(self, req: RequestView) -> T | None:
        r = self._find(req)
        return None if r is None else r.value

    def match_index(self, req: RequestView) -> int | None:
        """The position in the list given at build time of the route chosen, or None."""
        r = self._find(req)
        return None if r is None else r.order

    def _find(self, req: RequestView) -> _Route[T] | None:
        host = req.host
        path = req.path
        catch_all = self._catch_all
        if catch_all is not None and path[:1] == "/":
            return catch_all
        group = self._exact_hosts.get(host)
        if group is not None and (r := group.find(req, path)) is not None:
            return r
        n = len(host)
        shortest = self._wild_min
        if shortest and n > shortest:
            # "*.example.com" is stored as ".example.com"; try the suffixes from each dot, longest
            # first. The dot must not be the first character: the wildcard needs a non-empty label.
            # Dots that leave a suffix longer than the longest wildcard are skipped; the loop ends
            # when the suffix gets shorter than the shortest.
            wild = self._wild_hosts
            i = host.find(".", max(1, n - self._wild_max))
            while i >= 0 and n - i >= shortest:
                group = wild.get(host[i:])
                if group is not None and (r := group.find(req, path)) is not None:
                    return r
                i = host.find(".", i + 1)
        if self._any_host is not None:
            return self._any_host.find(req, path)
        return None
