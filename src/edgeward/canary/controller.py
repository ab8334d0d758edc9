"""The canary controller: the weight of a canary over time, step by step (sans-I/O).

States (`Phase`) and what moves between them:

    idle ──start──▶ progressing ──step passes, below max_weight──▶ progressing (weight + step)
                     │   ▲  │ step passes at max_weight
                     │   │  ▼
                     │   └─ confirming ──confirm(ok)──▶ promoted (weight 100)
                     │        (pre-promotion webhook; confirm(not ok) holds: progressing)
                     ├──any judgement says rollback──▶ rolled_back (weight 0, at once)
                     ├──pause──▶ paused ──start──▶ progressing (same weight, new window)
                     └──abort──▶ aborted (weight 0)
    promote (a person's command) from any state: promoted (weight 100).
    start from idle, rolled_back, aborted or promoted begins again at step_weight.

`tick(now, stable, canary)` is called often (the shell calls it several times per step); the
judge runs on every tick so a rollback happens on the first tick that finds a regression, not
at the step's end. A promotion only happens once `step_interval` has passed since the step
began. A wait or hold is reported once per `step_interval`; the window keeps accumulating
until it has enough data. Every change is returned as a `Decision` (the shell logs it, counts
it, keeps it for the admin API and resets the arms' window when `new_window` is set).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

from edgeward.canary.judge import ArmFigures, JudgeSettings, Outcome, judge

# Flagger's analysis examples and Argo Rollouts' setWeight steps most often move 10 points a
# step up to 50 %, judged once a minute (Flagger analysis.interval default 1m).
DEFAULT_STEP_WEIGHT: Final = 10
DEFAULT_MAX_WEIGHT: Final = 50
DEFAULT_STEP_INTERVAL: Final = 60.0
FULL_WEIGHT: Final = 100
# The shell judges each step this many times (canary/runner.py ticks every step_interval / 4):
# a regression is caught within a quarter step, and the false-rollback budget is split over
# these looks (planned_looks).
LOOKS_PER_STEP: Final = 4


def planned_looks(steps: StepSettings) -> int:
    """How many times a rollout of identical versions is judged before its promotion: every
    step up to max_weight and the one at it, LOOKS_PER_STEP times each."""
    windows = -(-steps.max_weight // steps.step_weight) + 1
    return windows * LOOKS_PER_STEP


class Phase(enum.Enum):
    IDLE = "idle"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    CONFIRMING = "confirming"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


FINAL: Final = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})


class CanaryStateError(ValueError):
    """A command that does not apply in the canary's current phase."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StepSettings:
    step_weight: int = DEFAULT_STEP_WEIGHT
    max_weight: int = DEFAULT_MAX_WEIGHT
    step_interval: float = DEFAULT_STEP_INTERVAL


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    kind: str            # start advance confirm promote hold wait rollback pause abort
    at: float
    phase: Phase
    weight_before: int
    weight: int
    reason: str
    step: int
    new_window: bool
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.kind, "phase": self.phase.value,
                "weight_before": self.weight_before, "weight": self.weight,
                "reason": self.reason, "step": self.step, "figures": self.figures}


class CanaryController:
    """One canary's phase, weight and step timing."""

    def __init__(self, steps: StepSettings, settings: JudgeSettings, now: float) -> None:
        self.steps = steps
        self.settings = settings
        self.phase = Phase.IDLE
        self.weight = 0
        self.step = 0
        self.step_started = now
        self.reported = now

    def _decide(self, kind: str, now: float, weight: int, phase: Phase, reason: str, *,
                new_window: bool, figures: dict[str, Any] | None = None) -> Decision:
        before = self.weight
        self.weight, self.phase = weight, phase
        if new_window:
            self.step_started = now
        self.reported = now
        return Decision(kind=kind, at=now, phase=phase, weight_before=before, weight=weight,
                        reason=reason, step=self.step, new_window=new_window,
                        figures=figures or {})

    # commands --------------------------------------------------------------------------------
    def start(self, now: float, reason: str = "started") -> Decision:
        if self.phase in (Phase.PROGRESSING, Phase.CONFIRMING):
            raise CanaryStateError(f"the canary is already {self.phase.value}")
        if self.phase is Phase.PAUSED:
            return self._decide("start", now, self.weight, Phase.PROGRESSING,
                                f"{reason} (resumed at weight {self.weight})", new_window=True)
        self.step = 1
        return self._decide("start", now, min(self.steps.step_weight, self.steps.max_weight),
                            Phase.PROGRESSING, reason, new_window=True)

    def pause(self, now: float, reason: str = "paused") -> Decision:
        if self.phase is not Phase.PROGRESSING:
            raise CanaryStateError(f"only a progressing canary can be paused; it is "
                                   f"{self.phase.value}")
        return self._decide("pause", now, self.weight, Phase.PAUSED, reason, new_window=False)

    def abort(self, now: float, reason: str = "aborted") -> Decision:
        if self.phase in FINAL or self.phase is Phase.IDLE:
            raise CanaryStateError(f"nothing to abort: the canary is {self.phase.value}")
        return self._decide("abort", now, 0, Phase.ABORTED, reason, new_window=True)

    def promote(self, now: float, reason: str = "promoted by command") -> Decision:
        if self.phase is Phase.PROMOTED:
            raise CanaryStateError("the canary is already promoted")
        return self._decide("promote", now, FULL_WEIGHT, Phase.PROMOTED, reason,
                            new_window=True)

    def confirm(self, now: float, ok: bool, reason: str) -> Decision:
        """The pre-promotion check's answer: promote, or hold and judge a new window."""
        if self.phase is not Phase.CONFIRMING:
            raise CanaryStateError(f"no promotion awaits confirmation ({self.phase.value})")
        if ok:
            return self._decide("promote", now, FULL_WEIGHT, Phase.PROMOTED, reason,
                                new_window=True)
        return self._decide("hold", now, self.weight, Phase.PROGRESSING, reason,
                            new_window=True)

    # judgement -------------------------------------------------------------------------------
    def tick(self, now: float, stable: ArmFigures, canary: ArmFigures) -> Decision | None:
        if self.phase is not Phase.PROGRESSING:
            return None
        verdict = judge(stable, canary, self.settings, now)
        if verdict.outcome is Outcome.ROLLBACK:
            return self._decide("rollback", now, 0, Phase.ROLLED_BACK, verdict.reason,
                                new_window=True, figures=verdict.figures)
        steps = self.steps
        if now - self.step_started < steps.step_interval:
            return None
        if verdict.outcome is Outcome.PROMOTE:
            if self.weight >= steps.max_weight:
                return self._decide("confirm", now, self.weight, Phase.CONFIRMING,
                                    verdict.reason + "; promotion pending",
                                    new_window=False, figures=verdict.figures)
            self.step += 1
            return self._decide("advance", now, min(self.weight + steps.step_weight,
                                                    steps.max_weight),
                                Phase.PROGRESSING, verdict.reason, new_window=True,
                                figures=verdict.figures)
        if now - self.reported < steps.step_interval:
            return None
        return self._decide(verdict.outcome.value, now, self.weight, Phase.PROGRESSING,
                            verdict.reason, new_window=False, figures=verdict.figures)

    def view(self, now: float) -> dict[str, Any]:
        return {"phase": self.phase.value, "weight": self.weight, "step": self.step,
                "step_age_s": round(now - self.step_started, 3),
                "step_weight": self.steps.step_weight, "max_weight": self.steps.max_weight,
                "step_interval_s": self.steps.step_interval}
