from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.concurrency import ConcurrencyLimiter


def test_refuses_past_the_limit_and_admits_again_after_a_release() -> None:
    limiter = ConcurrencyLimiter(2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    limiter.release()
    assert limiter.try_acquire()
    assert repr(limiter) == "<ConcurrencyLimiter 2/2 refused=1>"


def test_unbalanced_release_and_bad_limits_are_errors() -> None:
    with pytest.raises(RuntimeError):
        ConcurrencyLimiter(1).release()
    with pytest.raises(ValueError, match="max_concurrent must be >= 1, got 0"):
        ConcurrencyLimiter(0)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.booleans(), max_size=200), limit=st.integers(1, 5))
def test_in_flight_never_exceeds_the_limit(ops: list[bool], limit: int) -> None:
    limiter = ConcurrencyLimiter(limit)
    held = 0
    for acquire in ops:
        if acquire:
            got = limiter.try_acquire()
            assert got == (held < limit)
            held += got
        elif held:
            limiter.release()
            held -= 1
        assert limiter.active == held <= limit
