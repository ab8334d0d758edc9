"""The canary judge: its invariants under hypothesis, and the regressions it must catch."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.canary.judge import ArmFigures, JudgeSettings, Outcome, judge

S = JudgeSettings()


def arm(rng: random.Random, n: int, error_rate: float, median_s: float) -> ArmFigures:
    errors = sum(rng.random() < error_rate for _ in range(n))
    durations = [rng.lognormvariate(0.0, 0.3) * median_s for _ in range(min(n, 256))]
    return ArmFigures(n, errors, durations)


arms = st.builds(
    lambda n, e, d: ArmFigures(n, min(e, n), tuple(d)),
    st.integers(0, 400), st.integers(0, 400),
    st.lists(st.floats(0.0, 2.0, allow_nan=False), max_size=60))


@settings(max_examples=150, deadline=None)
@given(arms, arms, st.floats(0, 1e6))
def test_missing_data_never_promotes(stable: ArmFigures, canary: ArmFigures, now: float
                                     ) -> None:
    v = judge(stable, canary, S, now)
    assert v.at == now
    if min(stable.requests, canary.requests) < S.min_requests:
        assert v.outcome is not Outcome.PROMOTE
    if canary.requests == 0:
        assert v.outcome is Outcome.HOLD
        assert "no traffic" in v.reason


@settings(max_examples=150, deadline=None)
@given(arms, arms)
def test_more_canary_errors_never_turn_a_rollback_into_a_pass(stable: ArmFigures,
                                                             canary: ArmFigures) -> None:
    first = judge(stable, canary, S, 0.0)
    if first.outcome is not Outcome.ROLLBACK or canary.errors == canary.requests:
        return
    worse = ArmFigures(canary.requests, canary.errors + 1, canary.durations)
    assert judge(stable, worse, S, 0.0).outcome is Outcome.ROLLBACK


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([0.0, 0.01, 0.05, 0.2]),
       st.sampled_from([50, 200, 500]))
def test_identical_arms_rarely_roll_back(seed: int, error_rate: float, n: int) -> None:
    """Over many windows of two arms drawn from one distribution, rollbacks stay within the
    tests' false-positive bound (two one-sided tests at alpha each)."""
    rng = random.Random(seed)
    runs = 120
    rollbacks = sum(
        judge(arm(rng, n, error_rate, 0.01), arm(rng, n, error_rate, 0.01), S, 0.0).outcome
        is Outcome.ROLLBACK for _ in range(runs))
    # 2 * alpha = 2 % expected at most; allow binomial noise (mean 2.4 of 120, sd 1.5).
    assert rollbacks <= runs * 2 * S.alpha + 6


def test_identical_arms_promote_with_enough_data() -> None:
    rng = random.Random(7)
    v = judge(arm(rng, 500, 0.01, 0.01), arm(rng, 500, 0.01, 0.01), S, 5.0)
    assert v.outcome is Outcome.PROMOTE, v.reason
    assert v.figures["canary"]["requests"] == 500


def test_five_percent_errors_roll_back() -> None:
    rng = random.Random(1)
    v = judge(arm(rng, 400, 0.0, 0.01), arm(rng, 400, 0.05, 0.01), S, 0.0)
    assert v.outcome is Outcome.ROLLBACK
    assert "error rate" in v.reason and v.figures["errors_p"] < S.alpha


def test_small_significant_error_difference_below_effect_size_passes() -> None:
    # 0.2 % vs 0.6 % over 100k requests is significant, but under the 1 point effect size.
    v = judge(ArmFigures(100_000, 200), ArmFigures(100_000, 600), S, 0.0)
    assert v.figures["errors_p"] < S.alpha
    assert v.outcome is Outcome.PROMOTE


def test_fifty_ms_latency_regression_rolls_back() -> None:
    rng = random.Random(2)
    stable = arm(rng, 200, 0.0, 0.005)
    canary = ArmFigures(200, 0, [d + 0.05 for d in arm(rng, 200, 0.0, 0.005).durations])
    v = judge(stable, canary, S, 0.0)
    assert v.outcome is Outcome.ROLLBACK
    assert "latency" in v.reason and v.figures["latency_p"] < S.alpha


def test_sub_millisecond_noise_is_no_latency_regression() -> None:
    rng = random.Random(4)
    stable = ArmFigures(300, 0, [0.0004 * rng.lognormvariate(0, 0.1) for _ in range(300)])
    canary = ArmFigures(300, 0, [0.0008 * rng.lognormvariate(0, 0.1) for _ in range(300)])
    v = judge(stable, canary, S, 0.0)
    assert v.figures["latency_p"] < S.alpha  # twice as slow, significant, but 0.4 ms
    assert v.outcome is Outcome.PROMOTE


def test_latency_needs_samples() -> None:
    few = JudgeSettings(min_samples=50)
    stable = ArmFigures(100, 0, [0.001] * 10)
    canary = ArmFigures(100, 0, [0.5] * 10)
    assert judge(stable, canary, few, 0.0).outcome is Outcome.PROMOTE


def test_absolute_thresholds() -> None:
    limits = JudgeSettings(max_error_rate=0.02, max_p99=0.1)
    ok = ArmFigures(100, 1, [0.01] * 30)
    v = judge(ok, ArmFigures(100, 3, [0.01] * 30), limits, 0.0)
    assert v.outcome is Outcome.ROLLBACK and "max_error_rate" in v.reason
    v = judge(ok, ArmFigures(100, 0, [0.01] * 29 + [0.5]), limits, 0.0)
    assert v.outcome is Outcome.ROLLBACK and "max_p99" in v.reason


def test_wait_says_what_is_missing() -> None:
    v = judge(ArmFigures(10, 0), ArmFigures(60, 0), S, 0.0)
    assert v.outcome is Outcome.WAIT
    assert "stable 10 of 50" in v.reason
