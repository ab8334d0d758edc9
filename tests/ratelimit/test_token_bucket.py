from __future__ import annotations

import pytest

from edgeward.ratelimit.token_bucket import TokenBucket


def test_tokens_refill_continuously_up_to_the_burst() -> None:
    limiter = TokenBucket(rate=4.0, burst=4)
    assert sum(limiter.decide("k", 0.0).allowed for _ in range(5)) == 4
    assert limiter.decide("k", 0.25).allowed
    assert not limiter.decide("k", 0.25).allowed
    assert sum(limiter.decide("k", 100.0).allowed for _ in range(10)) == 4   # capped at burst


def test_remaining_reset_and_retry() -> None:
    limiter = TokenBucket(rate=2.0, burst=4)
    d = limiter.decide("k", 0.0, cost=3)
    assert (d.remaining, d.reset_after) == (1, pytest.approx(1.5))
    refused = limiter.decide("k", 0.0, cost=2)
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)


def test_a_clock_going_backwards_does_not_mint_tokens() -> None:
    limiter = TokenBucket(rate=1.0, burst=1)
    assert limiter.decide("k", 10.0).allowed
    assert not limiter.decide("k", 5.0).allowed
    assert not limiter.decide("k", 10.5).allowed
