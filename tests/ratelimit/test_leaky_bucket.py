from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.leaky_bucket import LeakyBucket


def test_a_burst_is_queued_and_spaced_at_the_rate() -> None:
    # nginx: rate=10r/s burst=4 -> here burst 5 (the served one plus four queued).
    limiter = LeakyBucket(rate=10.0, burst=5)
    delays = [limiter.decide("k", 0.0) for _ in range(6)]
    assert [d.allowed for d in delays] == [True] * 5 + [False]
    assert [d.delay for d in delays[:5]] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_nodelay_forwards_the_burst_at_once_but_keeps_the_slots_taken() -> None:
    limiter = LeakyBucket(rate=10.0, burst=5, nodelay=True)
    decisions = [limiter.decide("k", 0.0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert all(d.delay == 0.0 for d in decisions)
    assert decisions[-1].retry_after == pytest.approx(0.1)
    assert limiter.decide("k", 0.1).allowed
    assert not limiter.decide("k", 0.1).allowed


def test_delay_after_lets_the_first_queued_requests_through_undelayed() -> None:
    # nginx `delay=2`: the first two excess requests are not delayed.
    limiter = LeakyBucket(rate=10.0, burst=5, delay_after=2)
    delays = [limiter.decide("k", 0.0).delay for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_the_bucket_drains_while_idle() -> None:
    limiter = LeakyBucket(rate=2.0, burst=2)
    limiter.decide("k", 0.0)
    limiter.decide("k", 0.0)
    assert not limiter.decide("k", 0.0).allowed
    later = limiter.decide("k", 10.0)
    assert later.allowed and later.delay == 0.0 and later.remaining == 1


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=60),
    rate=st.sampled_from([1.0, 4.0, 10.0, 50.0]),
    burst=st.integers(min_value=1, max_value=10),
)
def test_delayed_requests_reach_the_upstream_at_most_at_the_rate(
    times: list[int], rate: float, burst: int
) -> None:
    limiter = LeakyBucket(rate=rate, burst=burst)
    forwarded = []
    for ms in sorted(times):
        d = limiter.decide("k", ms / 1000.0)
        if d.allowed:
            forwarded.append(ms / 1000.0 + d.delay)
    forwarded.sort()
    # What nginx promises without nodelay: requests leave the queue 1/rate apart.
    gaps = [b - a for a, b in zip(forwarded, forwarded[1:], strict=False)]
    assert all(g >= 1.0 / rate - 1e-6 for g in gaps)
