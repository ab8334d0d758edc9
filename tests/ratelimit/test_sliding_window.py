from __future__ import annotations

import pytest

from edgeward.ratelimit.sliding_window import SlidingWindow


def test_the_previous_window_fades_out_linearly() -> None:
    limiter = SlidingWindow(rate=10.0, burst=10)          # 1 s windows of 10
    assert all(limiter.decide("k", 0.5).allowed for _ in range(10))
    assert not limiter.decide("k", 0.9).allowed
    # At 1.5 s half of the previous window still counts: 5 of 10 are free.
    assert sum(limiter.decide("k", 1.5).allowed for _ in range(10)) == 5


def test_retry_after_points_at_the_first_admissible_moment() -> None:
    limiter = SlidingWindow(rate=10.0, burst=10)
    for _ in range(10):
        limiter.decide("k", 0.2)
    refused = limiter.decide("k", 1.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.1)
    assert limiter.decide("k", 1.0 + refused.retry_after + 1e-9).allowed


def test_a_window_skipped_entirely_forgets_the_old_count() -> None:
    limiter = SlidingWindow(rate=10.0, burst=10)
    for _ in range(10):
        limiter.decide("k", 0.0)
    assert sum(limiter.decide("k", 2.0).allowed for _ in range(12)) == 10
