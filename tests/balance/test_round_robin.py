from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BalancerOptions, Endpoint, make_balancer
from edgeward.balance.round_robin import SCHEDULE_LIMIT, WeightedBalancer, smooth_wrr_cycle


def endpoints(weights: list[int]) -> list[Endpoint]:
    return [Endpoint(f"10.0.0.{i + 1}", 8000, weight=w) for i, w in enumerate(weights)]


def test_round_robin_visits_each_endpoint_in_turn() -> None:
    eps = endpoints([1, 1, 1])
    b = make_balancer(BalancerOptions(), eps, random.Random(7))
    seq = [b.pick(None, 0.0) for _ in range(9)]
    first = eps.index(seq[0])  # type: ignore[arg-type]
    assert seq == [eps[(first + k) % 3] for k in range(9)]


def test_round_robin_start_differs_between_workers() -> None:
    eps = endpoints([1] * 10)
    starts = {
        make_balancer(BalancerOptions(), eps, random.Random(seed)).pick(None, 0.0)
        for seed in range(20)
    }
    assert len(starts) > 3


def test_nginx_documented_sequence_for_5_1_1() -> None:
    # The example in nginx's smooth WRR change: weights { 5, 1, 1 } give "a a b a c a a".
    assert smooth_wrr_cycle([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=12))
def test_smooth_wrr_cycle_is_exact_and_spread(weights: list[int]) -> None:
    cycle = smooth_wrr_cycle(weights)
    total = sum(weights)
    assert Counter(cycle) == {i: w for i, w in enumerate(weights)}
    counts = [0] * len(weights)
    for k, i in enumerate(cycle, start=1):
        counts[i] += 1
        # nginx's `current` never falls to -total: no endpoint is ahead of its share by 1.
        for j, w in enumerate(weights):
            assert counts[j] < k * w / total + 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 10), min_size=1, max_size=8),
    st.integers(0, 2**32),
    st.integers(1, 3),
)
def test_weighted_balancer_gives_exact_weights_in_every_cycle_window(
    weights: list[int], seed: int, cycles: int
) -> None:
    eps = endpoints(weights)
    b = make_balancer(BalancerOptions(balance="weighted"), eps, random.Random(seed))
    total = sum(weights)
    picks = [b.pick(None, 0.0) for _ in range(total * cycles)]
    for start in range(0, len(picks) - total + 1, max(1, total // 3)):
        window = Counter(picks[start : start + total])
        assert window == {e: e.weight for e in eps}


def test_weights_are_reduced_by_gcd_and_unavailable_removed() -> None:
    eps = endpoints([300, 100, 200])
    b = make_balancer(BalancerOptions(balance="weighted"), eps, random.Random(1))
    assert Counter(b.pick(None, 0.0) for _ in range(6)) == {eps[0]: 3, eps[1]: 1, eps[2]: 2}
    eps[0].ejected = True
    b.refresh()
    assert Counter(b.pick(None, 0.0) for _ in range(3)) == {eps[1]: 1, eps[2]: 2}


def test_huge_coprime_weights_use_nginx_loop_and_stay_exact() -> None:
    weights = [SCHEDULE_LIMIT - 1, 3, 3]  # 65541 > SCHEDULE_LIMIT, each within MAX_WEIGHT
    eps = endpoints(weights)
    b = make_balancer(BalancerOptions(balance="weighted"), eps, random.Random(1))
    assert isinstance(b, WeightedBalancer)
    counts = Counter(b.pick(None, 0.0) for _ in range(sum(weights)))
    assert counts == {eps[0]: SCHEDULE_LIMIT - 1, eps[1]: 3, eps[2]: 3}
