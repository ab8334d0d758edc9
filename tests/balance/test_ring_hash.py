from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BalancerOptions, Endpoint, hash64, make_balancer
from edgeward.balance.base import Balancer
from edgeward.balance.ring_hash import RingHashBalancer

KEYS = [hash64(f"user-{i}") for i in range(4000)]


def endpoints(n: int, weights: list[int] | None = None) -> list[Endpoint]:
    ws = weights or [1] * n
    return [Endpoint(f"10.1.{i // 200}.{i % 200 + 1}", 8000, weight=ws[i]) for i in range(n)]


def ring(eps: list[Endpoint], **kw: object) -> Balancer:
    return make_balancer(
        BalancerOptions(balance="ring_hash", panic_threshold=0.0, **kw),  # type: ignore[arg-type]
        eps, random.Random(1),
    )


def owners(b: Balancer) -> list[Endpoint | None]:
    return [b.pick(k, 0.0) for k in KEYS]


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 40), st.data())
def test_removing_one_endpoint_moves_only_its_keys(n: int, data: st.DataObject) -> None:
    eps = endpoints(n)
    gone = data.draw(st.integers(0, n - 1))
    b = ring(eps)
    before = owners(b)
    b.set_endpoints([e for i, e in enumerate(eps) if i != gone])
    after = owners(b)
    moved = sum(1 for x, y in zip(before, after, strict=True) if x is not y)
    for x, y in zip(before, after, strict=True):
        if x is not eps[gone]:
            assert x is y  # no key moves between survivors
    assert moved == before.count(eps[gone])
    # and the removed endpoint held about 1/N of the keys (1024-point ring; loose bound)
    assert moved / len(KEYS) < 3.0 / n


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 30), st.data())
def test_an_endpoint_going_down_and_up_moves_only_its_keys(n: int, data: st.DataObject) -> None:
    eps = endpoints(n)
    b = ring(eps)
    before = owners(b)
    down = eps[data.draw(st.integers(0, n - 1))]
    down.healthy = False
    assert b.refresh()
    after = owners(b)
    assert all(x is y for x, y in zip(before, after, strict=True) if x is not down)
    assert down not in after
    down.healthy = True
    b.refresh()
    assert owners(b) == before


def test_adding_an_endpoint_only_takes_keys() -> None:
    eps = endpoints(8)
    b = ring(eps)
    before = owners(b)
    new = Endpoint("10.9.9.9", 8000)
    b.set_endpoints([*eps, new])
    after = owners(b)
    assert all(y is x or y is new for x, y in zip(before, after, strict=True))
    assert 0.05 < after.count(new) / len(KEYS) < 0.25


def test_same_ring_whatever_the_discovery_order() -> None:
    eps = endpoints(10)
    shuffled = eps[:]
    random.Random(4).shuffle(shuffled)
    assert owners(ring(eps)) == owners(ring(shuffled))


def test_shares_follow_weights() -> None:
    eps = endpoints(3, [1, 2, 4])
    counts = Counter(owners(ring(eps, ring_size=8192)))
    for e in eps:
        assert abs(counts[e] / len(KEYS) - e.weight / 7) < 0.05


def test_ring_size_sets_points_per_weight() -> None:
    b = ring(endpoints(10))
    assert isinstance(b, RingHashBalancer)
    assert b.points_per_weight == 103  # ceil(1024 / 10)
    b.set_endpoints(endpoints(100))     # 10300 points > 4 x 1024: rescale
    assert b.points_per_weight == 11


def test_missing_key_falls_back_to_round_robin() -> None:
    eps = endpoints(4)
    b = ring(eps)
    assert Counter(b.pick(None, 0.0) for _ in range(8)) == {e: 2 for e in eps}


@settings(max_examples=20, deadline=None)
@given(
    st.integers(2, 12),
    st.sampled_from([1.1, 1.25, 1.5, 2.0]),
    st.lists(st.tuples(st.integers(0, 3999), st.booleans()), min_size=1, max_size=300),
)
def test_bounded_load_never_exceeds_factor_times_average(
    n: int, factor: float, ops: list[tuple[int, bool]]
) -> None:
    eps = endpoints(n)
    b = ring(eps, hash_balance_factor=factor)
    in_flight: list[Endpoint] = []
    for key_index, complete_one in ops:
        if complete_one and in_flight:
            in_flight.pop(key_index % len(in_flight)).active -= 1
        e = b.pick(KEYS[key_index], 0.0)
        assert e is not None
        e.active += 1
        in_flight.append(e)
        total = sum(x.active for x in eps)
        assert e.active <= math.ceil(factor * total / n)


def test_bounded_load_keeps_keys_home_when_balanced() -> None:
    eps = endpoints(5)
    plain = owners(ring(eps))
    bounded = owners(ring(eps, hash_balance_factor=1.25))
    assert plain == bounded  # nothing in flight: every endpoint is under its bound


def test_hot_key_spills_to_next_endpoints_under_bounded_load() -> None:
    eps = endpoints(4)
    b = ring(eps, hash_balance_factor=1.25)
    hot = KEYS[0]
    picked = []
    for _ in range(40):
        e = b.pick(hot, 0.0)
        assert e is not None
        e.active += 1
        picked.append(e)
    assert len(set(picked)) == 4
    assert max(e.active for e in eps) <= math.ceil(1.25 * 40 / 4)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 65_535), min_size=1, max_size=30), st.integers(1, 4096))
def test_the_ring_stays_within_four_times_ring_size_plus_one_point_per_endpoint(
        weights: list[int], ring_size: int) -> None:
    b = ring(endpoints(len(weights), weights), ring_size=ring_size)
    assert isinstance(b, RingHashBalancer)
    assert len(b._hashes) <= 4 * ring_size + len(weights)
    assert all(b.pick(k, 0.0) is not None for k in KEYS[:50])


def test_huge_weights_are_scaled_and_shares_still_follow_them() -> None:
    eps = endpoints(3, [60_000, 30_000, 10_000])
    b = ring(eps, ring_size=8192)
    assert isinstance(b, RingHashBalancer)
    assert b.points_per_weight == 8192 / 100_000
    assert len(b._hashes) == 8192
    counts = Counter(owners(b))
    for e in eps:
        assert abs(counts[e] / len(KEYS) - e.weight / 100_000) < 0.05
