from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BalancerOptions, Endpoint, make_balancer
from edgeward.balance.peak_ewma import UNKNOWN_COST_PENALTY, PeakEwmaBalancer


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(f"10.3.0.{i + 1}", 8000) for i in range(n)]


def ewma(eps: list[Endpoint], decay: float = 10.0, seed: int = 1) -> PeakEwmaBalancer:
    b = make_balancer(BalancerOptions(balance="peak_ewma", ewma_decay=decay), eps,
                      random.Random(seed))
    assert isinstance(b, PeakEwmaBalancer)
    return b


def test_prefers_the_faster_endpoint_after_latencies_are_recorded() -> None:
    eps = endpoints(3)
    b = ewma(eps)
    for t in range(20):
        b.record(eps[0], 0.200, float(t))
        b.record(eps[1], 0.010, float(t))
        b.record(eps[2], 0.050, float(t))
    counts = Counter(b.pick(None, 20.0) for _ in range(3000))
    # P2C over 3 with strict order: best wins 2/3 of pairs, middle 1/3, slowest never.
    assert counts[eps[0]] == 0
    assert counts[eps[1]] > 1800 and counts[eps[2]] > 800


def test_in_flight_requests_raise_load() -> None:
    eps = endpoints(2)
    b = ewma(eps)
    b.record(eps[0], 0.010, 0.0)
    b.record(eps[1], 0.030, 0.0)
    eps[0].active = 4  # 0.010 * 5 > 0.030 * 1
    assert {b.pick(None, 0.0) for _ in range(50)} == {eps[1]}


def test_a_latency_spike_counts_at_once_and_decays_afterwards() -> None:
    eps = endpoints(1)
    b = ewma(eps, decay=10.0)
    b.record(eps[0], 0.010, 0.0)
    b.record(eps[0], 1.000, 1.0)
    assert b.load(eps[0], 1.0) == 1.0                       # peak taken immediately
    b.record(eps[0], 0.010, 11.0)                            # one decay time later
    w = math.exp(-1.0)
    assert math.isclose(b.load(eps[0], 11.0), 1.0 * w + 0.010 * (1 - w))
    assert math.isclose(b.load(eps[0], 21.0), b.load(eps[0], 11.0) * w)  # idle decay


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0.001, 5.0), st.floats(0.001, 5.0), st.floats(0.0, 100.0),
    st.floats(0.5, 60.0),
)
def test_cost_is_between_the_samples_and_never_rises_without_a_bigger_sample(
    first: float, second: float, gap: float, decay: float
) -> None:
    eps = endpoints(1)
    b = ewma(eps, decay=decay)
    b.record(eps[0], first, 0.0)
    b.record(eps[0], second, gap)
    cost = b.load(eps[0], gap)
    assert min(first, second) - 1e-12 <= cost <= max(first, second) + 1e-12
    if second > first:
        assert cost == second
    assert b.load(eps[0], gap + 1.0) <= cost


def test_slow_host_is_probed_again_after_the_decay_time() -> None:
    eps = endpoints(2)
    b = ewma(eps, decay=1.0)
    b.record(eps[0], 2.0, 0.0)
    b.record(eps[1], 0.05, 0.0)
    assert eps[0] not in {b.pick(None, 0.5) for _ in range(20)}
    b.record(eps[1], 0.05, 10.0)  # fast host keeps reporting 50 ms
    # 10 decay times later the slow host's 2 s history is down to ~0.1 ms: it is tried again.
    assert eps[0] in {b.pick(None, 10.0) for _ in range(20)}


def test_untimed_host_is_tried_when_idle_but_not_piled_on() -> None:
    eps = endpoints(2)
    b = ewma(eps)
    b.record(eps[0], 0.010, 0.0)
    assert b.load(eps[1], 0.0) == 0.0
    assert {b.pick(None, 0.0) for _ in range(20)} == {eps[1]}
    eps[1].active = 1
    assert b.load(eps[1], 0.0) == UNKNOWN_COST_PENALTY + 1
    assert {b.pick(None, 0.0) for _ in range(20)} == {eps[0]}


def test_history_survives_membership_change_for_kept_keys() -> None:
    eps = endpoints(3)
    b = ewma(eps)
    b.record(eps[0], 0.5, 0.0)
    b.record(eps[2], 0.2, 0.0)
    b.set_endpoints([eps[0], eps[1]])
    state = b.state(eps[0])
    assert state is not None and state.cost == 0.5
    assert b.state(eps[2]) is None
    b.record(eps[2], 0.3, 1.0)  # departed endpoint: ignored, no error
    b.set_endpoints(eps)
    state2 = b.state(eps[2])
    assert state2 is not None and state2.cost == 0.0
