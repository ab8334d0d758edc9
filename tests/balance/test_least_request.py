from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BalancerOptions, Endpoint, make_balancer


def endpoints(weights: list[int]) -> list[Endpoint]:
    return [Endpoint(f"10.0.0.{i + 1}", 8000, weight=w) for i, w in enumerate(weights)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=20),
    st.integers(0, 2**32),
)
def test_p2c_never_picks_the_single_most_loaded(actives: list[int], seed: int) -> None:
    eps = endpoints([1] * len(actives))
    for e, a in zip(eps, actives, strict=True):
        e.active = a
    b = make_balancer(BalancerOptions(balance="least_request"), eps, random.Random(seed))
    top = max(actives)
    picked = [b.pick(None, 0.0) for _ in range(100)]
    if actives.count(top) == 1:
        assert eps[actives.index(top)] not in picked


def test_p2c_prefers_less_loaded_endpoints() -> None:
    eps = endpoints([1, 1, 1, 1])
    for e, a in zip(eps, [0, 2, 4, 8], strict=True):
        e.active = a
    b = make_balancer(BalancerOptions(balance="least_request"), eps, random.Random(5))
    counts = Counter(b.pick(None, 0.0) for _ in range(6000))
    # P2C with distinct loads: rank r of 4 wins (n - 1 - r) / C(4, 2) of pairs -> 3:2:1:0.
    assert counts[eps[0]] > counts[eps[1]] > counts[eps[2]] > counts[eps[3]] == 0
    assert abs(counts[eps[0]] / 6000 - 0.5) < 0.03


def test_p2c_spreads_a_simulated_burst_evenly() -> None:
    eps = endpoints([1] * 10)
    b = make_balancer(BalancerOptions(balance="least_request"), eps, random.Random(9))
    for _ in range(1000):
        e = b.pick(None, 0.0)
        assert e is not None
        e.active += 1  # requests that have not completed yet
    loads = [e.active for e in eps]
    assert max(loads) - min(loads) <= 3


def test_unequal_weights_idle_follow_weights() -> None:
    eps = endpoints([1, 2, 5])
    b = make_balancer(BalancerOptions(balance="least_request"), eps, random.Random(1))
    counts = Counter(b.pick(None, 0.0) for _ in range(8000))
    assert abs(counts[eps[0]] - 1000) <= 2
    assert abs(counts[eps[1]] - 2000) <= 2
    assert abs(counts[eps[2]] - 5000) <= 2


def test_unequal_weights_busy_endpoint_loses_share_by_bias() -> None:
    def share_of_heavy(bias: float) -> float:
        eps = endpoints([2, 1])
        eps[0].active = 3  # effective weight 2 / 4^bias against 1 / 1^bias
        b = make_balancer(
            BalancerOptions(balance="least_request", active_request_bias=bias),
            eps, random.Random(2),
        )
        return Counter(b.pick(None, 0.0) for _ in range(3000))[eps[0]] / 3000

    assert abs(share_of_heavy(0.0) - 2 / 3) < 0.01        # bias 0: plain weighted RR
    assert abs(share_of_heavy(1.0) - 1 / 3) < 0.01        # 0.5 : 1
    assert abs(share_of_heavy(2.0) - 1 / 9) < 0.01        # 0.125 : 1


def test_single_and_unavailable() -> None:
    eps = endpoints([1, 1])
    eps[1].active = 100
    eps[0].ejected = True
    b = make_balancer(
        BalancerOptions(balance="least_request", panic_threshold=0.0), eps, random.Random(1)
    )
    assert {b.pick(None, 0.0) for _ in range(20)} == {eps[1]}
