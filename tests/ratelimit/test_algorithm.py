"""The contract every algorithm shares: over any interval of t seconds a key is admitted at most
burst + rate * t cost units, whatever the arrival pattern."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.algorithm import Algorithm
from edgeward.ratelimit.gcra import GCRA
from edgeward.ratelimit.leaky_bucket import LeakyBucket
from edgeward.ratelimit.sliding_window import SlidingWindow
from edgeward.ratelimit.token_bucket import TokenBucket

arrivals = st.lists(
    st.tuples(st.integers(min_value=0, max_value=20_000), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=80,
).map(lambda xs: sorted((t / 1000.0, c) for t, c in xs))
rates = st.sampled_from([0.5, 1.0, 3.0, 7.5, 10.0, 100.0, 1000.0])
bursts = st.integers(min_value=3, max_value=20)

FACTORIES: dict[str, Callable[[float, int], Algorithm]] = {
    "gcra": lambda r, b: GCRA(r, b),
    "token_bucket": lambda r, b: TokenBucket(r, b),
    "leaky_bucket": lambda r, b: LeakyBucket(r, b),
    "leaky_bucket_nodelay": lambda r, b: LeakyBucket(r, b, nodelay=True),
    "sliding_window": lambda r, b: SlidingWindow(r, b),
}


def max_excess(events: Sequence[tuple[float, int]], rate: float, burst: int) -> float:
    """Largest admitted-cost-in-[t_i, t_j] minus (burst + rate * (t_j - t_i)) over all pairs."""
    worst = float("-inf")
    for i in range(len(events)):
        total = 0
        for j in range(i, len(events)):
            total += events[j][1]
            worst = max(worst, total - (burst + rate * (events[j][0] - events[i][0])))
    return worst


def test_the_bound_check_catches_a_limiter_that_overadmits() -> None:
    # 6 units at once against burst 5: the checker must notice.
    assert max_excess([(0.0, 1)] * 6, rate=1.0, burst=5) == pytest.approx(1.0)
    assert max_excess([(0.0, 1)] * 5 + [(1.0, 1)], rate=1.0, burst=5) <= 0


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=200, deadline=None)
@given(events=arrivals, rate=rates, burst=bursts)
def test_never_admits_more_than_burst_plus_rate_times_t(
    name: str, events: list[tuple[float, int]], rate: float, burst: int
) -> None:
    limiter = FACTORIES[name](rate, burst)
    admitted = [(t, c) for t, c in events if limiter.decide("k", t, c).allowed]
    assert max_excess(admitted, rate, burst) <= 1e-6


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=100, deadline=None)
@given(events=arrivals, rate=rates, burst=bursts)
def test_refusals_say_when_to_retry_and_that_retry_is_admitted(
    name: str, events: list[tuple[float, int]], rate: float, burst: int
) -> None:
    limiter = FACTORIES[name](rate, burst)
    for t, cost in events:
        decision = limiter.decide("k", t, cost)
        assert 0 <= decision.remaining <= burst
        assert decision.limit == burst
        if decision.allowed:
            assert decision.retry_after == 0.0
        else:
            assert decision.retry_after > 0
    # Coming back exactly when told is enough (the key is left alone meanwhile).
    t, cost = events[-1]
    decision = limiter.decide("k", t, cost)
    if not decision.allowed:
        assert limiter.decide("k", t + decision.retry_after + 1e-7, cost).allowed


EXACT = sorted(set(FACTORIES) - {"sliding_window"})


@pytest.mark.parametrize("name", EXACT)
def test_a_steady_sender_at_the_rate_is_never_refused(name: str) -> None:
    limiter = FACTORIES[name](10.0, 5)
    assert all(limiter.decide("k", i * 0.1).allowed for i in range(1000))


def test_the_sliding_window_estimate_is_conservative_for_a_steady_sender() -> None:
    # It assumes the previous window's requests were spread evenly, so a sender at exactly the
    # rate is sometimes refused at a window boundary; at 80 % of the rate it never is.
    limiter = SlidingWindow(10.0, 5)
    assert not all(limiter.decide("k", i * 0.1).allowed for i in range(1000))
    limiter = SlidingWindow(10.0, 5)
    assert all(limiter.decide("k", i * 0.125).allowed for i in range(1000))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_flood_gets_about_the_rate(name: str) -> None:
    limiter = FACTORIES[name](100.0, 10)
    admitted = sum(limiter.decide("k", i * 0.001).allowed for i in range(10_000))  # 1000/s, 10 s
    # Exact algorithms give burst + rate * t; the sliding window estimate gives a little less.
    low = 900 if name == "sliding_window" else 1000
    assert low <= admitted <= 1010
