"""The request-path pieces without sockets: the per-arm reservoir and the arm choice."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.canary.arms import ArmWindow, CanaryArms
from edgeward.canary.filter import CanaryFilter
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead, ResponseHead
from edgeward.routing.keys import parse_key
from edgeward.routing.split import Condition


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.booleans()), max_size=300),
       st.integers(1, 64))
def test_window_counts_exactly_and_keeps_a_bounded_sample(
        outcomes: list[tuple[float, bool]], cap: int) -> None:
    w = ArmWindow(cap, random.Random(1))
    for duration, error in outcomes:
        w.record(duration, error)
    requests, errors, samples = w.figures()
    assert requests == len(outcomes) and errors == sum(e for _, e in outcomes)
    assert len(samples) == min(cap, len(outcomes))
    assert Counter(samples) <= Counter(d for d, _ in outcomes)  # only recorded durations
    w.reset()
    assert w.figures() == (0, 0, [])


def test_reservoir_is_uniform_over_the_window() -> None:
    """Each request of the window is equally likely to be kept (algorithm R)."""
    kept: Counter[float] = Counter()
    rng = random.Random(3)
    for _ in range(2000):
        w = ArmWindow(10, rng)
        for i in range(100):
            w.record(float(i), False)
        kept.update(w.figures()[2])
    # Each of the 100 values is kept with probability 0.1: 200 of 2000 rounds on average.
    assert min(kept.values()) > 140 and max(kept.values()) < 260


def request(**headers: str) -> RequestHead:
    fields = Headers([(k.encode(), v.encode()) for k, v in headers.items()])
    return RequestHead("GET", b"/", "/", "h", b"h", fields, 0, "127.0.0.1", "rid")


def make(weight: int, **kw: object) -> tuple[CanaryFilter, CanaryArms]:
    arms = CanaryArms("stable", "canary", 16, random.Random(0))
    arms.set_weight(weight)
    now = [10.0]
    f = CanaryFilter(arms, "r", sticky=kw.get("sticky"),  # type: ignore[arg-type]
                     force_canary=kw.get("force_canary"),  # type: ignore[arg-type]
                     force_stable=kw.get("force_stable"),  # type: ignore[arg-type]
                     rng=random.Random(5), clock=lambda: now[0])
    return f, arms


def arm_of(f: CanaryFilter, req: RequestHead) -> str:
    f.on_request(req)
    assert req.upstream is not None
    return req.upstream


def test_raising_the_weight_only_moves_sticky_users_to_the_canary() -> None:
    users = [f"u{i}" for i in range(500)]
    before: set[str] = set()
    for weight in (0, 5, 10, 30, 50, 100):
        f, _ = make(weight, sticky=parse_key("header:x-user-id"))
        inside = {u for u in users if arm_of(f, request(**{"x-user-id": u})) == "canary"}
        assert before <= inside  # nobody goes back to stable
        assert abs(len(inside) - 5 * weight) <= 40
        before = inside


def test_overrides_win_over_the_weight() -> None:
    f, _ = make(0, force_canary=Condition(headers={"x-canary": "1"}),
                force_stable=Condition(cookies={"arm": "stable"}))
    assert arm_of(f, request(**{"x-canary": "1"})) == "canary"
    f, _ = make(100, force_canary=Condition(headers={"x-canary": "1"}),
                force_stable=Condition(cookies={"arm": "stable"}))
    assert arm_of(f, request(cookie="arm=stable")) == "stable"
    assert arm_of(f, request(**{"x-canary": "1", "cookie": "arm=stable"})) == "canary"


def test_draws_follow_the_weight_and_outcomes_land_in_their_arm() -> None:
    f, arms = make(20)
    picked = Counter(arm_of(f, request()) for _ in range(5000))
    assert 850 < picked["canary"] < 1150
    req = request()
    req.started = 9.5
    req.upstream = "canary"
    f.on_done(req, ResponseHead(503, None, 0))
    req.upstream = "stable"
    f.on_done(req, ResponseHead(200, None, 0))
    f.on_done(req, None)  # the client left before any response: counted nowhere
    assert arms.canary.figures() == (1, 1, [0.5])
    assert arms.stable.figures() == (1, 0, [0.5])
