"""TrafficSplit: conditions first (in order), sticky percent_of, weights converge."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.request import SimpleRequest
from edgeward.routing.config import SplitEntryConfig
from edgeward.routing.keys import parse_key
from edgeward.routing.split import Condition, TrafficSplit, percent_bucket
from edgeward.structs import load_struct


def entries(raw: list[dict[str, object]]) -> list[SplitEntryConfig]:
    return [load_struct(SplitEntryConfig, e) for e in raw]


def user(uid: str, **headers: str) -> SimpleRequest:
    return SimpleRequest(headers={"x-user-id": uid, **headers})


def canary_split(percent: float, rng: random.Random | None = None) -> TrafficSplit[str]:
    return TrafficSplit.from_config(entries([
        {"upstream": "canary", "when": {"percent_of": {"key": "header:x-user-id",
                                                       "percent": percent}}},
        {"upstream": "stable"},
    ]), str, rng or random.Random(1))


def test_conditions_in_order_then_default() -> None:
    s = TrafficSplit.from_config(entries([
        {"upstream": "beta", "when": {"header": {"X-Beta": "yes"}}},
        {"upstream": "eu", "when": {"cookie": {"region": "eu"}, "header": {"x-beta": "no"}}},
        {"upstream": "eu-any", "when": {"cookie": {"region": "eu"}}},
        {"upstream": "stable"},
    ]), lambda name: name.upper(), random.Random(0))
    def r(headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> str:
        return s.choose(SimpleRequest(headers=headers, cookies=cookies), "route")
    assert r({"x-beta": "yes"}, {"region": "eu"}) == "BETA"      # first match wins
    assert r({"x-beta": "no"}, {"region": "eu"}) == "EU"         # all conditions of an entry
    assert r({"x-beta": "maybe"}, {"region": "eu"}) == "EU-ANY"
    assert r({"x-beta": "Yes"}) == "STABLE"                      # values are exact
    assert r() == "STABLE"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.floats(0, 100).map(lambda p: round(p, 2)))
def test_percent_of_is_sticky_and_agrees_with_its_bucket(uid: str, percent: float) -> None:
    s = canary_split(percent)
    first = s.choose(user(uid), "r")
    assert all(s.choose(user(uid), "r") == first for _ in range(5))
    assert canary_split(percent, random.Random(99)).choose(user(uid), "other") == first
    assert (first == "canary") == (percent_bucket(uid) < round(percent * 100))


def test_percent_of_share_converges_and_ramping_up_keeps_everyone_in() -> None:
    uids = [f"user-{i}" for i in range(20_000)]
    inside: dict[float, set[str]] = {}
    for pct in (1, 5, 12.5, 50):
        s = canary_split(pct)
        inside[pct] = {u for u in uids if s.choose(user(u), "r") == "canary"}
        share = len(inside[pct]) / len(uids) * 100
        assert abs(share - pct) < max(0.5, pct * 0.1), (pct, share)
    assert inside[1] <= inside[5] <= inside[12.5] <= inside[50]
    assert canary_split(0).choose(user("x"), "r") == "stable"
    assert all(canary_split(100).choose(user(u), "r") == "canary" for u in uids[:200])


def test_percent_of_without_the_key_goes_to_default() -> None:
    s = canary_split(100)
    assert s.choose(SimpleRequest(), "r") == "stable"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=2, max_size=4).filter(lambda w: sum(w) > 0),
       st.integers(0, 2**32))
def test_weights_converge(weights: list[int], seed: int) -> None:
    s: TrafficSplit[int] = TrafficSplit((), [(i, w) for i, w in enumerate(weights)],
                                        random.Random(seed))
    n = 20_000
    counts = Counter(s.choose(SimpleRequest(), "r") for _ in range(n))
    total = sum(weights)
    for i, w in enumerate(weights):
        share = counts[i] / n
        assert abs(share - w / total) < 0.02, (weights, counts)
        if w == 0:
            assert counts[i] == 0


def test_sticky_key_weights_same_key_same_entry_and_shares_converge() -> None:
    s: TrafficSplit[str] = TrafficSplit((), [("a", 3), ("b", 1)], random.Random(0),
                                        sticky_key=parse_key("cookie:uid"))
    picks = {u: s.choose(SimpleRequest(cookies={"uid": u}), "r") for u in map(str, range(8000))}
    assert all(s.choose(SimpleRequest(cookies={"uid": u}), "r") == p
               for u, p in list(picks.items())[:500])
    assert abs(Counter(picks.values())["a"] / 8000 - 0.75) < 0.02
    # without the key: a random draw, still by weight
    no_key = Counter(s.choose(SimpleRequest(), "r") for _ in range(8000))
    assert abs(no_key["a"] / 8000 - 0.75) < 0.02


def test_refused_splits() -> None:
    with pytest.raises(ValueError, match="every entry has `when`"):
        TrafficSplit.from_config(entries([{"upstream": "a", "when": {"header": {"x": "1"}}}]),
                                 str, random.Random(0))
    with pytest.raises(ValueError, match="default entry"):
        TrafficSplit((), [("a", 0)], random.Random(0))
    with pytest.raises(ValueError, match="weight must be >= 0, got -2"):
        TrafficSplit((), [("a", 1), ("b", -2)], random.Random(0))
    with pytest.raises(ValueError, match="at least one of header"):
        Condition()
    with pytest.raises(ValueError, match="between 0 and 100"):
        Condition(key=parse_key("path"), percent=120)


def test_single_and_repr() -> None:
    s = TrafficSplit.single("orders")
    assert s.choose(SimpleRequest(), "r") == "orders"
    w: TrafficSplit[str] = TrafficSplit((), [("a", 3), ("z", 0), ("b", 1)], random.Random(0))
    assert repr(w) == "<TrafficSplit conditional=0 weighted=[('a', 3), ('b', 1)]>"
