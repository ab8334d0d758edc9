"""Rules every balancer shares: availability, panic mode, empty membership, refresh."""

from __future__ import annotations

import random
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BALANCERS, BalancerOptions, make_balancer
from edgeward.balance.endpoint import MAX_WEIGHT, Endpoint, clamp_weight
from edgeward.balance.hashing import hash64
from edgeward.balance.options import BalanceKind

KINDS: list[BalanceKind] = sorted(get_args(BalanceKind))


def endpoints(n: int, weights: list[int] | None = None) -> list[Endpoint]:
    ws = weights or [1] * n
    return [Endpoint(f"10.0.0.{i + 1}", 8000, weight=ws[i]) for i in range(n)]


def _keys(i: int) -> int | None:
    return hash64(f"user-{i}") if i % 3 else None


@pytest.mark.parametrize("kind", KINDS)
def test_no_endpoints_pick_none(kind: BalanceKind) -> None:
    b = make_balancer(BalancerOptions(balance=kind), [], random.Random(1))
    assert b.pick(None, 0.0) is None
    assert b.pick(hash64("k"), 0.0) is None


@pytest.mark.parametrize("kind", KINDS)
def test_all_down_without_panic_picks_none(kind: BalanceKind) -> None:
    eps = endpoints(3)
    for e in eps:
        e.healthy = False
    b = make_balancer(BalancerOptions(balance=kind, panic_threshold=0.0), eps, random.Random(1))
    assert b.pick(None, 0.0) is None
    assert b.pick(hash64("k"), 0.0) is None


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=8, deadline=None)
@given(down=st.sets(st.integers(0, 5), max_size=2), seed=st.integers(0, 2**32))
def test_unavailable_never_picked_above_panic_threshold(
    kind: BalanceKind, down: set[int], seed: int
) -> None:
    eps = endpoints(6)
    b = make_balancer(BalancerOptions(balance=kind), eps, random.Random(seed))
    for i in down:
        if i % 2:
            eps[i].healthy = False
        else:
            eps[i].ejected = True
    b.refresh()
    assert not b.panicking
    picked = {b.pick(_keys(i), float(i)) for i in range(300)}
    assert picked == {e for e in eps if e.available}


@pytest.mark.parametrize("kind", KINDS)
def test_panic_spreads_over_every_endpoint(kind: BalanceKind) -> None:
    eps = endpoints(6)
    b = make_balancer(BalancerOptions(balance=kind), eps, random.Random(3))
    for e in eps[:4]:
        e.healthy = False
    assert b.refresh() is True
    assert b.panicking
    picked = {b.pick(_keys(i), float(i)) for i in range(600)}
    assert picked == set(eps)
    for e in eps[:4]:
        e.healthy = True
    assert b.refresh() is True
    assert not b.panicking


def test_panic_threshold_counts_weight_not_endpoints() -> None:
    eps = endpoints(3, [8, 1, 1])
    b = make_balancer(BalancerOptions(balance="weighted"), eps, random.Random(1))
    eps[0].ejected = True  # 2 of 3 endpoints left, but only 2/10 of the weight
    b.refresh()
    assert b.panicking
    assert eps[0] in {b.pick(None, 0.0) for _ in range(10)}


def test_refresh_reports_no_change_when_flags_did_not_flip() -> None:
    b = make_balancer(BalancerOptions(), endpoints(3), random.Random(1))
    assert b.refresh() is False
    b.endpoints[1].healthy = False
    assert b.refresh() is True
    assert b.refresh() is False
    assert len(b.live) == 2
    assert repr(b) == "<RoundRobinBalancer live=2/3>"


def test_duplicate_endpoint_is_refused_by_key() -> None:
    eps = endpoints(2) + endpoints(1)
    with pytest.raises(ValueError, match="10.0.0.1:8000"):
        make_balancer(BalancerOptions(), eps, random.Random(1))


def test_make_balancer_refuses_invalid_options_naming_the_key() -> None:
    with pytest.raises(ValueError, match="panic_threshold: must be between 0 and 1, got 2.0"):
        make_balancer(BalancerOptions(panic_threshold=2.0), endpoints(1), random.Random(1))


@pytest.mark.parametrize("kind", KINDS)
def test_needs_hash_key_only_for_hash_balancers(kind: BalanceKind) -> None:
    b = make_balancer(BalancerOptions(balance=kind), endpoints(2), random.Random(1))
    assert b.needs_hash_key is (kind in ("ring_hash", "maglev"))
    assert type(b).__name__ in repr(b)


def test_every_configurable_kind_has_a_balancer() -> None:
    assert sorted(BALANCERS) == KINDS


def test_endpoint_weights_are_bounded() -> None:
    assert MAX_WEIGHT == 65_535
    assert [clamp_weight(w) for w in (-3, 0, 1, 70, 10**9)] == [1, 1, 1, 70, MAX_WEIGHT]
    Endpoint("h", 1, MAX_WEIGHT)
    with pytest.raises(ValueError, match="weight must be between 1 and 65535, got 65536"):
        Endpoint("h", 1, MAX_WEIGHT + 1)
