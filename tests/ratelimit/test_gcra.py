from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.gcra import GCRA

arrivals = st.lists(
    st.tuples(st.integers(min_value=0, max_value=20_000), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=80,
).map(lambda xs: sorted((t / 1000.0, c) for t, c in xs))
rates = st.sampled_from([0.5, 1.0, 3.0, 7.5, 10.0, 100.0, 1000.0])
bursts = st.integers(min_value=3, max_value=20)


class ReferenceGCRA:
    """ITU-T I.371 virtual scheduling in exact rational arithmetic, one key."""

    def __init__(self, rate: Fraction, burst: int) -> None:
        self.t = 1 / rate
        self.tau = (burst - 1) * self.t
        self.tat: Fraction | None = None

    def admit(self, now: Fraction, cost: int) -> bool:
        tat = now if self.tat is None or self.tat < now else self.tat
        # A cost-c request is c back-to-back cells: the last one must conform.
        if tat + (cost - 1) * self.t > now + self.tau:
            return False
        self.tat = tat + cost * self.t
        return True


def test_a_fresh_key_gets_its_burst_at_once_then_one_per_interval() -> None:
    limiter = GCRA(rate=10.0, burst=5)
    assert [limiter.decide("k", 0.0).allowed for _ in range(6)] == [True] * 5 + [False]
    refused = limiter.decide("k", 0.0)
    assert refused.retry_after == pytest.approx(0.1)
    assert limiter.decide("k", 0.05).allowed is False
    assert limiter.decide("k", 0.1).allowed is True


def test_decision_reports_remaining_and_reset() -> None:
    limiter = GCRA(rate=2.0, burst=4)
    first = limiter.decide("k", 100.0)
    assert (first.allowed, first.limit, first.remaining) == (True, 4, 3)
    assert first.reset_after == pytest.approx(0.5)
    assert first.retry_after == 0.0
    for _ in range(3):
        limiter.decide("k", 100.0)
    refused = limiter.decide("k", 100.0)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.reset_after == pytest.approx(2.0)
    assert refused.retry_after == pytest.approx(0.5)


def test_keys_are_independent() -> None:
    limiter = GCRA(rate=1.0, burst=1)
    assert limiter.decide("a", 0.0).allowed
    assert not limiter.decide("a", 0.0).allowed
    assert limiter.decide("b", 0.0).allowed


def test_cost_spends_several_units_and_is_bounded_by_burst() -> None:
    limiter = GCRA(rate=1.0, burst=5)
    assert limiter.decide("k", 0.0, cost=4).remaining == 1
    assert not limiter.decide("k", 0.0, cost=2).allowed
    assert limiter.decide("k", 0.0, cost=1).allowed
    with pytest.raises(ValueError, match="cost must be between 1 and burst=5, got 6"):
        limiter.decide("k", 0.0, cost=6)


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [(0.0, 1, "rate must be"), (-1.0, 1, "rate must be"), (1.0, 0, "burst must be an integer")],
)
def test_bad_parameters_name_the_field(rate: float, burst: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GCRA(rate=rate, burst=burst)


def test_memory_is_bounded_by_max_keys() -> None:
    limiter = GCRA(rate=1.0, burst=1, max_keys=100)
    for i in range(10_000):
        limiter.decide(f"client-{i}", 0.0)
    assert len(limiter.keys) == 100
    # The most recent keys are remembered; the oldest were forgotten (fresh budget again).
    assert not limiter.decide("client-9999", 0.0).allowed
    assert limiter.decide("client-0", 0.0).allowed


@settings(max_examples=300, deadline=None)
@given(events=arrivals, rate=rates, burst=bursts)
def test_matches_the_reference_virtual_scheduling_model(
    events: list[tuple[float, int]], rate: float, burst: int
) -> None:
    limiter = GCRA(rate=rate, burst=burst)
    reference = ReferenceGCRA(Fraction(rate), burst)
    for t, cost in events:
        expected = reference.admit(Fraction(round(t * 1000), 1000), cost)
        assert limiter.decide("k", t, cost).allowed is expected, (t, cost)
