from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.config import RateLimitConfig
from edgeward.ratelimit.leaky_bucket import LeakyBucket
from edgeward.ratelimit.limiter import build_local_limiter, make_algorithm
from edgeward.ratelimit.sliding_window import SlidingWindow


def test_local_limiter_enforces_and_counts() -> None:
    limiter = build_local_limiter(RateLimitConfig(rate=1.0, burst=2))
    assert limiter.local is True
    verdicts = [limiter.decide_sync("k", 0.0).allowed for _ in range(3)]
    assert verdicts == [True, True, False]
    assert (limiter.stats.allowed, limiter.stats.refused) == (2, 1)


async def test_the_async_path_gives_the_same_answers() -> None:
    limiter = build_local_limiter(RateLimitConfig(rate=1.0, burst=1))
    assert (await limiter.decide("k", 0.0)).allowed
    assert not (await limiter.decide("k", 0.0)).allowed


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(st.integers(0, 3000), min_size=1, max_size=100),
    algorithm=st.sampled_from(["gcra", "token_bucket", "leaky_bucket", "sliding_window"]),
)
def test_shadow_mode_never_refuses_but_counts_what_it_would_have(
    times: list[int], algorithm: str
) -> None:
    enforced = build_local_limiter(RateLimitConfig(rate=2.0, burst=3, algorithm=algorithm))  # type: ignore[arg-type]
    shadow = build_local_limiter(
        RateLimitConfig(rate=2.0, burst=3, algorithm=algorithm, enforce=False)  # type: ignore[arg-type]
    )
    for ms in sorted(times):
        real = enforced.decide_sync("k", ms / 1000)
        d = shadow.decide_sync("k", ms / 1000)
        assert d.allowed and d.retry_after == 0.0
        assert d.shadow is (not real.allowed)
    assert shadow.stats.refused == 0
    assert shadow.stats.shadow_refused == enforced.stats.refused


def test_make_algorithm_follows_the_config_and_shares_the_budget() -> None:
    leaky = make_algorithm(RateLimitConfig(rate=10.0, burst=8, algorithm="leaky_bucket",
                                           nodelay=True))
    assert isinstance(leaky, LeakyBucket) and leaky.nodelay
    share = make_algorithm(RateLimitConfig(rate=10.0, burst=8, algorithm="sliding_window"),
                           share=4)
    assert isinstance(share, SlidingWindow)
    assert (share.rate, share.burst) == (2.5, 2)
    assert make_algorithm(RateLimitConfig(rate=10.0, burst=3), share=8).burst == 1
    assert build_local_limiter(RateLimitConfig(rate=10.0, burst=5)).window == pytest.approx(0.5)
