"""RFC 9111 rules with injected time: what is stored, for how long, and when it may be used."""

from __future__ import annotations

from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from edgeward.cache.policy import (
    FRESH,
    MUST_VALIDATE,
    STALE_REVALIDATE,
    RoutePolicy,
    current_age,
    freshness,
    not_modified,
    parse_directives,
    refusal,
    serves_on_error,
    usability,
)

WALL = 1_700_000_000.0
NONE = RoutePolicy()


def fresh_of(cc: str | None, *, date: float | None = WALL, expires: float | None = None,
             age: str | None = None, lm: float | None = None, policy: RoutePolicy = NONE,
             status: int = 200):
    return freshness(status, parse_directives(cc), formatdate(date, usegmt=True) if date else None,
                     formatdate(expires, usegmt=True) if expires else None, age,
                     formatdate(lm, usegmt=True) if lm else None, policy, WALL)


def test_directives_are_case_insensitive_and_first_wins() -> None:
    assert parse_directives('Max-Age=5, max-age=9, private="set-cookie", no-cache') == {
        "max-age": "5", "private": "set-cookie", "no-cache": None}


def test_s_maxage_beats_max_age_beats_expires() -> None:
    assert fresh_of("s-maxage=10, max-age=100").lifetime == 10
    assert fresh_of("max-age=100", expires=WALL + 5).lifetime == 100
    assert fresh_of(None, expires=WALL + 5).lifetime == 5
    assert fresh_of(None, expires=WALL - 5).lifetime == 0


def test_invalid_max_age_is_stale_not_default() -> None:
    policy = RoutePolicy(default_ttl=60)
    assert fresh_of("max-age=soon", policy=policy).lifetime == 0
    assert fresh_of(None, policy=policy).lifetime == 60


def test_heuristic_only_when_configured() -> None:
    assert fresh_of(None, lm=WALL - 1000).lifetime == 0
    assert fresh_of(None, lm=WALL - 1000, policy=RoutePolicy(heuristic=True)).lifetime == 100
    # not for statuses that are not heuristically cacheable
    assert fresh_of(None, lm=WALL - 1000, policy=RoutePolicy(heuristic=True),
                    status=302).lifetime == 0


def test_initial_age_from_age_and_date() -> None:
    assert fresh_of("max-age=60", age="7").initial_age == 7
    assert fresh_of("max-age=60", date=WALL - 20).initial_age == 20


def test_refusals() -> None:
    d = parse_directives
    assert refusal(200, d("no-store"), False, None, False) == "no-store"
    assert refusal(200, d("private, max-age=60"), False, None, False) == "private"
    assert refusal(200, d("max-age=60"), False, "*", False) == "vary"
    assert refusal(200, d("max-age=60"), True, None, False) == "authorization"
    assert refusal(200, d("public, max-age=60"), True, None, False) is None
    assert refusal(200, d("s-maxage=60"), True, None, False) is None
    assert refusal(200, d("must-revalidate, max-age=60"), True, None, False) is None
    assert refusal(200, d("max-age=60"), False, None, True) == "set-cookie"
    assert refusal(206, d("max-age=60"), False, None, False) == "status"
    assert refusal(200, d("max-age=60"), False, "accept-language", False) is None


def test_stale_extensions_and_their_limits() -> None:
    f = fresh_of("max-age=10, stale-while-revalidate=5, stale-if-error=100")
    assert usability(f, 0.0, 9.9) == FRESH
    assert usability(f, 0.0, 12.0) == STALE_REVALIDATE
    assert usability(f, 0.0, 15.0) == MUST_VALIDATE
    assert serves_on_error(f, 0.0, 109.0) and not serves_on_error(f, 0.0, 111.0)
    strict = fresh_of("max-age=10, must-revalidate, stale-if-error=100")
    assert strict.sie == 0 and not serves_on_error(strict, 0.0, 11.0)
    assert usability(fresh_of("max-age=10, no-cache"), 0.0, 0.0) == MUST_VALIDATE
    route = fresh_of("max-age=10", policy=RoutePolicy(swr=3, sie=7))
    assert (route.swr, route.sie) == (3, 7)


@given(lifetime=st.integers(0, 10_000), age0=st.integers(0, 1000),
       t1=st.floats(0, 20_000), t2=st.floats(0, 20_000))
def test_age_never_decreases_and_freshness_is_monotonic(lifetime: int, age0: int, t1: float,
                                                         t2: float) -> None:
    f = fresh_of(f"max-age={lifetime}", age=str(age0))
    lo, hi = sorted((t1, t2))
    assert current_age(f, 0.0, lo) <= current_age(f, 0.0, hi)
    # once stale, never fresh again without a new answer
    if usability(f, 0.0, lo) != FRESH:
        assert usability(f, 0.0, hi) != FRESH
    assert usability(f, 0.0, lo) <= usability(f, 0.0, hi)


def test_conditional_requests() -> None:
    assert not_modified('"v1"', None, '"v0", W/"v1"', None)
    assert not_modified('W/"v1"', None, '"v1"', None)  # weak comparison
    assert not_modified('"v1"', None, "*", None)
    assert not not_modified(None, None, '"v1"', None)
    lm = formatdate(WALL, usegmt=True)
    assert not_modified(None, lm, None, formatdate(WALL + 1, usegmt=True))
    assert not not_modified(None, lm, None, formatdate(WALL - 1, usegmt=True))
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
    assert not not_modified('"v1"', lm, '"v2"', formatdate(WALL + 1, usegmt=True))
