"""RFC 9111 shared-cache rules as plain functions: what may be stored, for how long, and
whether a stored response may answer a request now. Sans-I/O: time comes in as arguments.

Two clocks: `wall` (Unix seconds) only where HTTP dates are compared, when a response is
stored (Expires - Date, Age, the heuristic's Date - Last-Modified); `now` (monotonic seconds)
for everything after, so a stored entry's age never jumps with the wall clock.

Storing (§3): a shared cache stores a final response to GET whose status it understands when
the response does not say `no-store` or `private`, has no `Vary: *` and, to a request that
carried `Authorization`, says `public`, `s-maxage` or `must-revalidate` (§3.5). A response
that sets a cookie is not stored (nginx and Varnish's builtin VCL refuse those too). Freshness
(§4.2.1): `s-maxage`, else `max-age`, else `Expires` - `Date`, else, only when the route asks
for it, a heuristic (10% of Date - Last-Modified, §4.2.2), else the route's `default_ttl`.
A response without freshness is still stored when it has a validator, to be revalidated.
Stale use (RFC 5861): `stale-while-revalidate` / `stale-if-error` from the response, else the
route's; never with `must-revalidate`, `proxy-revalidate` or `no-cache`.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Final

# Statuses a cache may store with a heuristic lifetime (RFC 9110 §15.1 "heuristically
# cacheable"); with explicit freshness any of UNDERSTOOD is stored.
HEURISTIC_STATUSES: Final = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
UNDERSTOOD: Final = HEURISTIC_STATUSES | frozenset({302, 303, 307, 400, 403, 500, 502, 503,
                                                     504})
# RFC 9111 §4.2.2's "typical setting" of the heuristic: 10% of the time since modification,
# capped at a day (Squid's refresh_pattern default percent 20% capped at 3 days is higher).
HEURISTIC_FRACTION: Final = 0.1
HEURISTIC_CAP: Final = 86400.0


def parse_directives(value: str | None) -> dict[str, str | None]:
    """Cache-Control as {directive: argument or None}, names lower-case, quotes removed;
    the first occurrence of a directive wins (RFC 9111 §4.2.1)."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        name, eq, arg = part.strip().partition("=")
        name = name.strip().lower()
        if not name or name in out:
            continue
        out[name] = arg.strip().strip('"') if eq else None
    return out


def seconds(directives: dict[str, str | None], name: str) -> float | None:
    """A delta-seconds directive's value; None when absent or not a number (§1.2.2: invalid
    values are treated as absent, except that an invalid max-age makes the response stale,
    handled by the caller through `invalid_max_age`)."""
    if name not in directives:
        return None
    arg = directives[name]
    if arg is None or not arg.isdigit():
        return None
    return float(min(int(arg), 2**31))


def http_date(value: str | None) -> float | None:
    """An HTTP-date as Unix seconds; None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp()


class Freshness:
    """How long a response is fresh, and what it allows once stale, as stored with it."""

    __slots__ = ("lifetime", "initial_age", "swr", "sie", "revalidate", "no_cache")

    def __init__(self, lifetime: float, initial_age: float, swr: float, sie: float,
                 revalidate: bool, no_cache: bool) -> None:
        self.lifetime = lifetime        # seconds fresh, counted from the origin's answer
        self.initial_age = initial_age  # its age when received (Age, Date vs now)
        self.swr = swr                  # seconds it may be served stale while revalidating
        self.sie = sie                  # seconds it may be served stale when the origin fails
        self.revalidate = revalidate    # must-revalidate / proxy-revalidate: never stale
        self.no_cache = no_cache        # no-cache: revalidate before every use

    def __repr__(self) -> str:
        return f"<Freshness {self.lifetime}s age0={self.initial_age}s>"


class RoutePolicy:
    """A route's cache settings the rules read (compiled once from its config)."""

    __slots__ = ("default_ttl", "heuristic", "swr", "sie", "max_ttl")

    def __init__(self, *, default_ttl: float = 0.0, heuristic: bool = False, swr: float = 0.0,
                 sie: float = 0.0, max_ttl: float = 0.0) -> None:
        self.default_ttl = default_ttl  # lifetime of a response without one (0: none)
        self.heuristic = heuristic
        self.swr = swr
        self.sie = sie
        self.max_ttl = max_ttl          # cap on any lifetime (0: none)


def refusal(status: int, directives: dict[str, str | None], authorized: bool,
            vary: str | None, sets_cookie: bool) -> str | None:
    """Why a response to a GET may not be stored (None: it may)."""
    if status not in UNDERSTOOD:
        return "status"
    if "no-store" in directives:
        return "no-store"
    if "private" in directives:
        return "private"
    if vary is not None and "*" in vary:
        return "vary"
    if authorized and not ("public" in directives or "s-maxage" in directives
                           or "must-revalidate" in directives):
        return "authorization"
    if sets_cookie:
        return "set-cookie"
    return None


def freshness(status: int, directives: dict[str, str | None], date: str | None,
              expires: str | None, age: str | None, last_modified: str | None,
              policy: RoutePolicy, wall: float) -> Freshness:
    """The lifetime and stale allowances of a response received at `wall`."""
    date_value = http_date(date)
    if date_value is None:
        date_value = wall
    lifetime = _lifetime(status, directives, date_value, expires, last_modified, policy)
    if policy.max_ttl > 0.0 and lifetime > policy.max_ttl:
        lifetime = policy.max_ttl
    # §4.2.3 with request and response times equal (the gateway cannot tell them apart).
    age_value = float(age) if age is not None and age.strip().isdigit() else 0.0
    initial_age = max(wall - date_value, 0.0, age_value)
    revalidate = "must-revalidate" in directives or "proxy-revalidate" in directives
    no_cache = "no-cache" in directives
    swr = seconds(directives, "stale-while-revalidate")
    sie = seconds(directives, "stale-if-error")
    strict = revalidate or no_cache
    return Freshness(lifetime, initial_age,
                     0.0 if strict else (swr if swr is not None else policy.swr),
                     0.0 if strict else (sie if sie is not None else policy.sie),
                     revalidate, no_cache)


def _lifetime(status: int, directives: dict[str, str | None], date_value: float,
              expires: str | None, last_modified: str | None, policy: RoutePolicy) -> float:
    found = seconds(directives, "s-maxage")
    if found is None:
        found = seconds(directives, "max-age")
        if found is None and "max-age" in directives:
            return 0.0  # an invalid max-age: stale (§4.2.1)
    if found is not None:
        return found
    if expires is not None:
        expires_value = http_date(expires)
        return max(expires_value - date_value, 0.0) if expires_value is not None else 0.0
    if status not in HEURISTIC_STATUSES:
        return 0.0
    if policy.heuristic:
        modified = http_date(last_modified)
        if modified is not None and modified < date_value:
            return min((date_value - modified) * HEURISTIC_FRACTION, HEURISTIC_CAP)
    return policy.default_ttl


def current_age(fresh: Freshness, stored_at: float, now: float) -> float:
    """§4.2.3: the age when received plus the time it has been resident."""
    return fresh.initial_age + max(now - stored_at, 0.0)


# What a stored response may do for a request now.
FRESH: Final = 0          # serve it
STALE_REVALIDATE: Final = 1  # serve it stale and revalidate in the background
MUST_VALIDATE: Final = 2  # ask the origin (conditionally when it has validators)


def usability(fresh: Freshness, stored_at: float, now: float) -> int:
    if fresh.no_cache:
        return MUST_VALIDATE
    age = current_age(fresh, stored_at, now)
    if age < fresh.lifetime:
        return FRESH
    if age < fresh.lifetime + fresh.swr:
        return STALE_REVALIDATE
    return MUST_VALIDATE


def serves_on_error(fresh: Freshness, stored_at: float, now: float) -> bool:
    """A stale response may stand in for an origin error now (stale-if-error)."""
    return current_age(fresh, stored_at, now) < fresh.lifetime + fresh.sie


def not_modified(etag: str | None, last_modified: str | None, if_none_match: str | None,
                 if_modified_since: str | None) -> bool:
    """The client's conditional GET matches the stored response (RFC 9110 §13.1.2/§13.1.3):
    If-None-Match by weak comparison, else If-Modified-Since against Last-Modified."""
    if if_none_match is not None:
        if etag is None:
            return False
        if if_none_match.strip() == "*":
            return True
        mine = _opaque(etag)
        return any(_opaque(t) == mine for t in if_none_match.split(","))
    if if_modified_since is None or last_modified is None:
        return False
    since, modified = http_date(if_modified_since), http_date(last_modified)
    return since is not None and modified is not None and modified <= since


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag
