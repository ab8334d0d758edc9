"""The canary controller with a fake clock: steps, promotion, immediate rollback, commands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.canary.controller import (
    CanaryController,
    CanaryStateError,
    Phase,
    StepSettings,
)
from edgeward.canary.judge import ArmFigures, JudgeSettings

STEPS = StepSettings(step_weight=20, max_weight=60, step_interval=1.0)
JUDGE = JudgeSettings(min_requests=10)
GOOD = ArmFigures(100, 0, [0.01] * 30)
BAD = ArmFigures(100, 30, [0.01] * 30)
NONE = ArmFigures(0, 0)


def started(now: float = 0.0) -> CanaryController:
    c = CanaryController(STEPS, JUDGE, now)
    d = c.start(now)
    assert (d.kind, d.weight, d.phase) == ("start", 20, Phase.PROGRESSING)
    return c


def test_good_canary_steps_up_then_awaits_confirmation_then_promotes() -> None:
    c = started()
    assert c.tick(0.5, GOOD, GOOD) is None  # within the step: nothing yet
    weights = []
    now = 0.0
    while c.phase is Phase.PROGRESSING:
        now += 1.0
        d = c.tick(now, GOOD, GOOD)
        assert d is not None
        weights.append(d.weight)
    assert weights == [40, 60, 60]
    assert c.phase is Phase.CONFIRMING
    d = c.confirm(now, True, "hook ok")
    assert (d.kind, d.weight, c.phase) == ("promote", 100, Phase.PROMOTED)
    assert c.tick(now + 5, BAD, BAD) is None  # final: no more judgement


def test_refused_confirmation_holds_and_judges_again() -> None:
    c = started()
    for t in (1.0, 2.0, 3.0):
        c.tick(t, GOOD, GOOD)
    assert c.phase is Phase.CONFIRMING
    d = c.confirm(3.0, False, "pre-promotion webhook answered 500")
    assert (d.kind, d.weight, c.phase, d.new_window) == ("hold", 60, Phase.PROGRESSING, True)


def test_rollback_is_immediate_mid_step() -> None:
    c = started()
    d = c.tick(0.01, GOOD, BAD)
    assert d is not None and (d.kind, d.weight, d.phase) == ("rollback", 0, Phase.ROLLED_BACK)
    assert "error rate" in d.reason and d.figures["canary"]["errors"] == 30


def test_no_traffic_holds_once_per_interval_and_says_so() -> None:
    c = started()
    assert c.tick(0.5, GOOD, NONE) is None
    d = c.tick(1.0, GOOD, NONE)
    assert d is not None and d.kind == "hold" and "no traffic" in d.reason
    assert d.weight == 20 and not d.new_window
    assert c.tick(1.5, GOOD, NONE) is None
    assert c.tick(2.0, GOOD, NONE) is not None


def test_too_little_data_waits_and_keeps_the_window() -> None:
    c = started()
    d = c.tick(1.0, ArmFigures(5, 0), ArmFigures(5, 0))
    assert d is not None and d.kind == "wait" and not d.new_window
    d = c.tick(1.1, GOOD, GOOD)  # the window filled: the step passes at once
    assert d is not None and (d.kind, d.weight) == ("advance", 40)


def test_commands() -> None:
    c = CanaryController(STEPS, JUDGE, 0.0)
    with pytest.raises(CanaryStateError, match="only a progressing canary"):
        c.pause(0.0)
    with pytest.raises(CanaryStateError, match="nothing to abort"):
        c.abort(0.0)
    c.start(0.0)
    with pytest.raises(CanaryStateError, match="already progressing"):
        c.start(0.0)
    c.tick(1.0, GOOD, GOOD)
    assert c.pause(1.5).phase is Phase.PAUSED
    assert c.tick(9.0, GOOD, BAD) is None  # paused: not judged
    d = c.start(10.0)
    assert (d.weight, d.phase) == (40, Phase.PROGRESSING) and "resumed" in d.reason
    assert c.abort(10.5).weight == 0 and c.phase is Phase.ABORTED
    assert c.start(11.0).weight == 20  # begins again
    assert c.promote(11.0).weight == 100
    with pytest.raises(CanaryStateError):
        c.promote(11.0)


figures = st.builds(lambda n, e: ArmFigures(n, min(e, n), [0.01] * min(n, 40)),
                    st.integers(0, 200), st.integers(0, 200))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 3.0), figures, figures), max_size=30))
def test_weight_stays_within_bounds_and_rollback_zeroes(
        ticks: list[tuple[float, ArmFigures, ArmFigures]]) -> None:
    c = started()
    now = 0.0
    for dt, stable, canary in ticks:
        now += dt
        before = c.weight
        d = c.tick(now, stable, canary)
        assert 0 <= c.weight <= STEPS.max_weight
        if d is None:
            assert c.weight == before
            continue
        if d.kind == "rollback":
            assert c.weight == 0 and c.phase is Phase.ROLLED_BACK
        else:
            assert c.weight >= before  # only a rollback lowers the weight
            assert min(stable.requests, canary.requests) >= JUDGE.min_requests \
                or d.kind in ("wait", "hold")
