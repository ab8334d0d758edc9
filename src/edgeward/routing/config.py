"""Config read by edgeward.structs for `routes[].match` and `routes[].split[]`.

`MatchConfig` says which requests a route takes; `SplitEntryConfig` (with `WhenConfig` and
`PercentOfConfig`) says which upstream of a route a request goes to. The precedence between
routes is documented in `routing/table.py` and docs/routing.md.

A route's `split` list has rules that span its entries (a default entry must exist); the route
config calls `split_problems(entries)` from its own `check()`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from edgeward.routing.keys import parse_key
from edgeward.routing.regex import pattern_problem
from edgeward.values import doc

# RFC 9110 §9.1: a method is a token; upper case by convention (all registered methods are).
_METHOD_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Z]+$")
_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A DNS name (RFC 1123 labels) or an IP literal; `*.` may lead (wildcard) — checked separately.
_LABEL: Final = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_HOST_RE: Final = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_IPV6_RE: Final = re.compile(r"^[0-9a-f:.]+$")

# A protobuf full name (package and service) and a method name.
_GRPC_SERVICE_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_GRPC_METHOD_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# nginx upstream `server ... weight=1` and Traefik weighted services both default to 1: an entry
# listed without a weight takes an equal share with the other default entries.
DEFAULT_WEIGHT: Final = 1
# Percent has two decimals of resolution: the hash space is cut in 10,000 buckets (0.01%), as
# Istio/Envoy runtime fractions use a denominator of 10,000 for `percent` splits.
PERCENT_BUCKETS: Final = 10_000


def _host_problem(host: str) -> str | None:
    """Why `host` is not a valid host pattern, or None."""
    host = host.lower()
    if host == "*":
        return None
    if ":" in host and not host.startswith("["):
        if _IPV6_RE.match(host):
            return None
        return f"host {host!r} must not carry a port (the port is not part of host matching)"
    if host.startswith("[") and host.endswith("]") and _IPV6_RE.match(host[1:-1]):
        return None
    name = host[2:] if host.startswith("*.") else host
    if "*" in name:
        return (
            f"host {host!r}: a wildcard is only allowed as the whole first label, "
            "as *.example.com"
        )
    if not _HOST_RE.match(name):
        return f"host {host!r} is not a valid host name"
    return None


@dataclass(frozen=True, kw_only=True)
class GrpcMatchConfig:
    """A gRPC service, or one of its methods: the path `/pkg.Service/Method` of a request
    whose content-type is application/grpc (or +proto, +json...) or application/grpc-web*."""

    service: str = field(metadata=doc("full service name, package included: pkg.Service"))
    method: str | None = field(default=None, metadata=doc("one method; None: all of them"))

    def path(self) -> str:
        """The exact path (with a method) or the path prefix (without) it matches."""
        return f"/{self.service}/{self.method}" if self.method else f"/{self.service}/"

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not _GRPC_SERVICE_RE.match(self.service):
            problems.append(("service", f"{self.service!r} is not a protobuf service name "
                                        "(pkg.Service)"))
        if self.method is not None and not _GRPC_METHOD_RE.match(self.method):
            problems.append(("method", f"{self.method!r} is not a protobuf method name"))
        return problems


@dataclass(frozen=True, kw_only=True)
class MatchConfig:
    """Which requests a route takes. Every condition given must hold (AND); none given = all."""

    host: str | None = field(
        default=None,
        metadata=doc(
            'Exact host "api.example.com", wildcard "*.example.com" (one or more labels before '
            '.example.com, as Envoy domains) or "*" (any). None: any host.'
        ),
    )
    hosts: list[str] = field(
        default_factory=list,
        metadata=doc("Several host patterns (any may match); exclusive with `host`."),
    )
    path: str | None = field(
        default=None, metadata=doc("Exact path (without query), e.g. /healthz.")
    )
    path_prefix: str | None = field(
        default=None,
        metadata=doc(
            "Plain string prefix, as Envoy `prefix` and nginx `location /x`: /api matches /apix "
            "too; write /api/ for a segment boundary."
        ),
    )
    path_regex: str | None = field(
        default=None,
        metadata=doc(
            "RE2 regular expression that must match the WHOLE path (Envoy safe_regex: linear "
            "time; no backreferences or lookaround)."
        ),
    )
    methods: list[str] = field(
        default_factory=list,
        metadata=doc("Methods accepted (upper-cased); empty: any method."),
    )
    headers: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("Header name -> exact value (name case-insensitive, value case-sensitive)."),
    )
    header_present: list[str] = field(
        default_factory=list,
        metadata=doc("Header names that must be present, with any value."),
    )
    grpc: GrpcMatchConfig | None = field(
        default=None,
        metadata=doc("gRPC calls to a service (or one method): its path, and a gRPC or "
                     "gRPC-Web content-type; exclusive with path, path_prefix, path_regex."),
    )

    def host_patterns(self) -> tuple[str, ...]:
        """The host patterns, lower-cased; ("*",) when the route takes any host."""
        raw = [self.host] if self.host is not None else list(self.hosts)
        pats = tuple(h.lower() for h in raw)
        return pats if pats and "*" not in pats else ("*",)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.host is not None and self.hosts:
            problems.append(("hosts", "give either host or hosts, not both"))
        if self.host is not None and (reason := _host_problem(self.host)):
            problems.append(("host", reason))
        for i, h in enumerate(self.hosts):
            if reason := _host_problem(h):
                problems.append((f"hosts[{i}]", reason))
        given = [
            k for k in ("path", "path_prefix", "path_regex") if getattr(self, k) is not None
        ]
        if self.grpc is not None and given:
            problems.append(("grpc", f"give either grpc or {given[0]}, not both"))
        if self.grpc is not None:
            problems += [(f"grpc.{k}", r) for k, r in self.grpc.check()]
        if len(given) > 1:
            problems.append(
                (given[1], f"give at most one of path, path_prefix, path_regex (got {given})")
            )
        for key in ("path", "path_prefix"):
            value = getattr(self, key)
            if value is not None and not value.startswith("/"):
                problems.append((key, f"must start with '/', got {value!r} (it could never match)"))
        if self.path_regex is not None and (reason := pattern_problem(self.path_regex)):
            problems.append(("path_regex", reason))
        for i, m in enumerate(self.methods):
            if not _METHOD_RE.match(m.upper()):
                problems.append((f"methods[{i}]", f"{m!r} is not an HTTP method token"))
        for name in self.headers:
            if not _TOKEN_RE.match(name):
                problems.append((f"headers.{name}", f"{name!r} is not a valid header name"))
        for i, name in enumerate(self.header_present):
            if not _TOKEN_RE.match(name):
                problems.append((f"header_present[{i}]", f"{name!r} is not a valid header name"))
        return problems


@dataclass(frozen=True, kw_only=True)
class PercentOfConfig:
    """A sticky slice of traffic: requests whose key hashes into the first `percent`% buckets."""

    key: str = field(
        metadata=doc('Key spec (grammar of hash_on and rate-limit key), e.g. "header:x-user-id".')
    )
    percent: float = field(
        metadata=doc("0..100, resolution 0.01. Raising it keeps everyone already inside.")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        try:
            parse_key(self.key)
        except ValueError as exc:
            problems.append(("key", str(exc)))
        if not 0.0 <= self.percent <= 100.0:
            problems.append(("percent", f"must be between 0 and 100, got {self.percent}"))
        elif abs(self.percent * 100 - round(self.percent * 100)) > 1e-6:
            problems.append(
                ("percent", f"resolution is 0.01 (10,000 buckets), got {self.percent}")
            )
        return problems


@dataclass(frozen=True, kw_only=True)
class WhenConfig:
    """Conditions for a gray (canary) entry. All given conditions must hold."""

    header: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("Header name -> exact value, e.g. {x-canary: 'true'}."),
    )
    cookie: dict[str, str] = field(
        default_factory=dict, metadata=doc("Cookie name -> exact value.")
    )
    percent_of: PercentOfConfig | None = field(
        default=None, metadata=doc("A sticky percentage of the requests, by the hash of a key.")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.header and not self.cookie and self.percent_of is None:
            problems.append(("", "needs at least one of header, cookie, percent_of"))
        for name in self.header:
            if not _TOKEN_RE.match(name):
                problems.append((f"header.{name}", f"{name!r} is not a valid header name"))
        for name in self.cookie:
            if not _TOKEN_RE.match(name):
                problems.append((f"cookie.{name}", f"{name!r} is not a valid cookie name"))
        return problems


@dataclass(frozen=True, kw_only=True)
class SplitEntryConfig:
    """One entry of `routes[].split`: an upstream, with a weight or a `when` condition."""

    upstream: str = field(metadata=doc("Name of an upstream under `upstreams`."))
    weight: int = field(
        default=DEFAULT_WEIGHT,
        metadata=doc(
            "Share among the entries without `when` (relative; 0 parks an entry with no traffic). "
            "Default 1, as nginx and Traefik."
        ),
    )
    when: WhenConfig | None = field(
        default=None,
        metadata=doc("If set, the entry takes exactly the requests that satisfy it (first wins)."),
    )
    labels: dict[str, str] | None = field(
        default=None,
        metadata=doc("If set, the entry's requests go only to the upstream's endpoints carrying "
                     "all these labels; none available: 503 no_subset_endpoint "
                     "(docs/locality.md)."),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.upstream:
            problems.append(("upstream", "must name an upstream"))
        if self.weight < 0:
            problems.append(("weight", f"must be >= 0, got {self.weight}"))
        if self.when is not None and self.weight != DEFAULT_WEIGHT:
            problems.append(
                (
                    "weight",
                    f"has no effect on an entry with `when` (got {self.weight}); "
                    "use when.percent_of for a share",
                )
            )
        return problems


def split_problems(
    entries: Sequence[SplitEntryConfig], key: str = "split"
) -> list[tuple[str, str]]:
    """Rules across a route's split entries, as (key path, reason) for the route's `check()`."""
    if not entries:
        return [(key, "needs at least one entry")]
    defaults = [e for e in entries if e.when is None]
    if not defaults:
        return [
            (
                key,
                "every entry has `when`; add an entry without `when` for the requests that "
                "match none of them",
            )
        ]
    if sum(e.weight for e in defaults) <= 0:
        return [(key, "the entries without `when` all have weight 0; give one a weight > 0")]
    return []
