"""The fleet canary's state round trip and the merge of the members' counts (sans-I/O)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from edgeward.canary.config import AnalysisConfig, CanaryConfig, FleetConfig
from edgeward.canary.controller import CanaryController, Phase, StepSettings
from edgeward.canary.fleetstate import (
    MemberCounts,
    counts_value,
    merge,
    merge_window,
    next_state,
    parse_counts,
    restore,
)
from edgeward.canary.judge import ArmFigures, JudgeSettings


@st.composite
def arms(draw: st.DrawFn) -> ArmFigures:
    durations = draw(st.lists(st.floats(0.0, 10.0), max_size=40))
    requests = len(durations) + draw(st.integers(0, 1000))
    return ArmFigures(requests, draw(st.integers(0, requests)), durations)


@given(st.lists(arms(), max_size=6), st.integers(1, 60), st.integers(0, 2**32))
def test_merge_sums_counts_and_caps_the_union_of_samples(
        members: list[ArmFigures], cap: int, seed: int) -> None:
    got = merge(members, cap, random.Random(seed))
    assert got.requests == sum(m.requests for m in members)
    assert got.errors == sum(m.errors for m in members)
    union = sorted(d for m in members for d in m.durations)
    assert len(got.durations) == min(cap, len(union))
    pool = list(union)
    for d in got.durations:      # a sub-multiset of the union
        pool.remove(d)


def test_merge_weighs_samples_by_the_requests_they_stand_for() -> None:
    busy = ArmFigures(10_000, 0, [1.0] * 100)     # each sample stands for 100 requests
    quiet = ArmFigures(100, 0, [2.0] * 100)       # each for 1
    rng = random.Random(7)
    drawn = [d for _ in range(50) for d in merge([busy, quiet], 100, rng).durations]
    assert drawn.count(1.0) / len(drawn) > 0.9


def test_only_the_current_window_is_merged() -> None:
    old = MemberCounts(3, ArmFigures(50, 50, [9.0]), ArmFigures(50, 50, [9.0]))
    new = MemberCounts(4, ArmFigures(20, 1, [0.1]), ArmFigures(10, 0, [0.2]))
    stable, canary = merge_window([old, new, new], 4, 10, random.Random(1))
    assert (stable.requests, stable.errors, canary.requests) == (40, 2, 20)


@given(arms(), arms(), st.integers(0, 10**6))
def test_published_counts_parse_back(stable: ArmFigures, canary: ArmFigures,
                                     window: int) -> None:
    got = parse_counts(counts_value(window, stable, canary))
    assert got == MemberCounts(window, ArmFigures(stable.requests, stable.errors,
                                                  list(stable.durations)),
                               ArmFigures(canary.requests, canary.errors,
                                          list(canary.durations)))


@given(st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.integers()),
                 st.just({"window": 1, "stable": [1, 2, []], "canary": [1, 0, []]})))
def test_anything_else_is_not_counts(value: object) -> None:
    assert parse_counts(value) is None


def test_a_restored_controller_goes_on_from_the_state() -> None:
    steps, settings = StepSettings(step_weight=10, max_weight=50, step_interval=5.0), \
        JudgeSettings(alpha=0.01, min_requests=1)
    leader = CanaryController(steps, settings, 100.0)
    state = next_state(leader, {"window": 0, "decisions": []}, leader.start(100.0), 100.0)
    good = ArmFigures(100, 0, [0.01] * 50)
    d = leader.tick(106.0, good, good)
    assert d is not None and d.kind == "advance"
    state = next_state(leader, state, d, 106.0)
    successor = CanaryController(steps, settings, 0.0)
    restore(successor, state)
    assert (successor.phase, successor.weight, successor.step) == (Phase.PROGRESSING, 20, 2)
    assert state["window"] == 2 and [x["decision"] for x in state["decisions"]] == [
        "start", "advance"]
    assert successor.tick(107.0, good, good) is None    # the step began at 106


def test_fleet_config_is_checked() -> None:
    assert FleetConfig(etcd_prefix="canary", lease_ttl=1).check() == [
        ("etcd_prefix", "must start and end with /"),
        ("lease_ttl", "must be at least 2s (etcd leases count whole seconds)")]
    assert CanaryConfig(stable="a", canary="b", fleet=FleetConfig(),
                        analysis=AnalysisConfig()).check() == []
