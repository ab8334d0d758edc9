"""The latency-relative failure threshold of a canary's breaker (circuit_breaker.
rollout_failure_rate): slower than the stable arm trips sooner, the end of a rollout restores
failure_rate."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.canary.config import CanaryConfig
from edgeward.canary.run import CanaryRun
from edgeward.resilience.breaker import CLOSED, OPEN, CircuitBreaker, rollout_threshold
from edgeward.resilience.config import BreakerConfig, RolloutThreshold
from edgeward.resilience.outcome import Outcome
from edgeward.structs import ConfigError, load_struct

RATIOS = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)


@given(RATIOS, RATIOS)
def test_the_threshold_never_rises_as_the_canary_slows(a: float, b: float) -> None:
    slow, fast = max(a, b), min(a, b)
    assert 0.03 <= rollout_threshold(0.03, 0.02, slow) <= rollout_threshold(0.03, 0.02, fast)
    assert rollout_threshold(0.03, 0.02, fast) <= 0.05 + 1e-12


def test_equal_speed_is_base_plus_span_and_four_times_slower_a_quarter_of_span() -> None:
    assert rollout_threshold(0.03, 0.02, 1.0) == pytest.approx(0.05)
    assert rollout_threshold(0.03, 0.02, 0.5) == pytest.approx(0.05)  # faster: no bonus
    assert rollout_threshold(0.03, 0.02, 4.0) == pytest.approx(0.035)


def feed(breaker: CircuitBreaker, calls: int, failures: int) -> str:
    now = 100.0
    for i in range(calls):
        outcome = Outcome(503) if i < failures else Outcome(200)
        breaker.record(outcome, 0.01, now)
    return breaker.state(now)


def rollout_breaker() -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(min_requests=100, window=60.0,
                                        rollout_failure_rate=RolloutThreshold()))


def test_four_percent_failures_open_a_four_times_slower_canary_only() -> None:
    plain = rollout_breaker()
    assert feed(plain, 100, 4) == CLOSED          # failure_rate 0.5 outside a rollout
    same_speed = rollout_breaker()
    same_speed.set_latency_ratio(1.0)
    assert feed(same_speed, 100, 4) == CLOSED     # 4 % < 5 %
    slower = rollout_breaker()
    slower.set_latency_ratio(4.0)
    assert feed(slower, 100, 4) == OPEN           # 4 % >= 3.5 %


def test_the_end_of_the_rollout_restores_failure_rate_and_no_rule_means_no_change() -> None:
    b = rollout_breaker()
    b.set_latency_ratio(4.0)
    b.set_latency_ratio(None)
    assert feed(b, 100, 10) == CLOSED
    without = CircuitBreaker(BreakerConfig(min_requests=100, window=60.0))
    without.set_latency_ratio(4.0)                # no rollout_failure_rate: ignored
    assert feed(without, 100, 10) == CLOSED


@pytest.mark.parametrize(("raw", "where"), [
    ({"base": 0}, "rollout_failure_rate.base"),
    ({"base": 0.9, "span": 0.2}, "rollout_failure_rate.span"),
])
def test_bad_rollout_figures_are_refused_with_their_key(raw: dict[str, float], where: str
                                                        ) -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(BreakerConfig, {"rollout_failure_rate": raw}, "gw.yaml", "circuit_breaker")
    assert any(where in line for line in err.value.lines())


def test_the_run_reports_the_canary_p99_over_the_stable_p99_once_both_have_samples() -> None:
    config = load_struct(CanaryConfig, {"stable": "a", "canary": "b", "autostart": True},
                         "gw.yaml", "routes[0].canary")
    run = CanaryRun("r", config, random.Random(1), 0.0)
    assert run.rolling_out()
    assert run.latency_ratio() is None            # no samples yet: too little to say
    for _ in range(200):
        run.arms.stable.record(0.010, False)
        run.arms.canary.record(0.040, False)
    assert run.latency_ratio() == pytest.approx(4.0)
