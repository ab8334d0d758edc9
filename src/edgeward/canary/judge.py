"""The canary judge: one verdict from the two arms' figures of one step window (sans-I/O).

`judge(stable, canary, settings, now)` returns a `Verdict`: its outcome, a reason a person can
read, and the figures it was computed from. Outcomes, checked in this order:

1. HOLD, "no traffic": the canary arm saw no request in the window. The canary neither
   passes nor fails on nothing (Flagger's "no values found" halts; Argo's NaN is
   "Inconclusive"); the controller keeps the weight and says why.
2. WAIT: either arm has fewer than `min_requests` requests. Too little data is never a pass.
3. ROLLBACK, absolute: the canary's error rate is above `max_error_rate`, or its p99 above
   `max_p99` (both optional; Flagger's `thresholdRange`, Argo's `failureCondition`).
4. ROLLBACK, errors: the canary's error rate exceeds the stable's by at least
   `min_error_increase` (an absolute difference: the effect size that matters), and the
   two-proportion z-test says so with p < `alpha`.
5. ROLLBACK, latency: both arms have at least `min_samples` sampled durations, the canary's
   median exceeds the stable's by at least `min_latency_increase` (relative), and the
   Mann-Whitney U test says the canary's durations are larger with p < `alpha` (Kayenta's
   MannWhitneyClassifier with an effect size); the medians must also differ by at least
   `min_latency_delta` seconds, so scheduling noise on sub-millisecond services is no
   regression.
6. PROMOTE: none of the above; the step passes.

Both comparisons need significance AND effect size: significance alone rolls back on tiny
harmless differences once traffic is large; effect size alone rolls back on noise when traffic
is small. With identical arms each test fires with probability at most about `alpha` per
call (the tests' false-positive rate), and the effect sizes make it rarer still. A caller that
judges a growing window several times divides its budget over those looks (canary/config.py
does: `analysis.alpha` is per rollout).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edgeward.canary.stats import mann_whitney_greater, quantile, two_proportion

# The level of one test at one look, for direct users of the judge; a configured canary
# splits `analysis.alpha` (per rollout, 5 %) over its looks instead (canary/config.py).
DEFAULT_ALPHA: Final = 0.01
# Flagger's typical request-success-rate threshold is 99 %: a one point rise in the error rate
# is the smallest difference worth rolling back for.
DEFAULT_MIN_ERROR_INCREASE: Final = 0.01
# A median 20 % slower than the stable's (Kayenta configurations commonly allow 10-25 %).
DEFAULT_MIN_LATENCY_INCREASE: Final = 0.2
# ...and at least 5 ms slower in absolute terms: a 20 % rise of a 1 ms median is scheduling
# noise on a busy host, not a regression users feel (Flagger's request-duration checks are
# absolute thresholds for the same reason).
DEFAULT_MIN_LATENCY_DELTA: Final = 0.005
# Requests per arm per window before any judgement (the normal approximations behind both
# tests want tens of observations; Argo's `count`/`inconclusiveLimit` plays the same part).
DEFAULT_MIN_REQUESTS: Final = 50
# Durations per arm before the latency test runs (Mann-Whitney's normal approximation is
# good from about 20 per sample).
DEFAULT_MIN_SAMPLES: Final = 20


class Outcome(enum.Enum):
    PROMOTE = "promote"
    HOLD = "hold"
    ROLLBACK = "rollback"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class ArmFigures:
    """One arm's figures over a window: requests, errors (5xx or no response from the
    upstream) and a sample of durations in seconds."""

    requests: int
    errors: int
    durations: Sequence[float] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeSettings:
    alpha: float = DEFAULT_ALPHA
    min_requests: int = DEFAULT_MIN_REQUESTS
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_error_increase: float = DEFAULT_MIN_ERROR_INCREASE
    min_latency_increase: float = DEFAULT_MIN_LATENCY_INCREASE
    min_latency_delta: float = DEFAULT_MIN_LATENCY_DELTA
    max_error_rate: float | None = None
    max_p99: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    at: float
    figures: dict[str, Any] = field(default_factory=dict)


def _arm_view(arm: ArmFigures, ordered: list[float]) -> dict[str, Any]:
    p50 = quantile(ordered, 0.5)
    p99 = quantile(ordered, 0.99)
    return {"requests": arm.requests, "errors": arm.errors,
            "error_rate": arm.error_rate, "samples": len(ordered),
            "p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "p99_ms": None if p99 is None else round(p99 * 1000, 3)}


def judge(stable: ArmFigures, canary: ArmFigures, settings: JudgeSettings, now: float
          ) -> Verdict:
    s_sorted, c_sorted = sorted(stable.durations), sorted(canary.durations)
    figures: dict[str, Any] = {"stable": _arm_view(stable, s_sorted),
                               "canary": _arm_view(canary, c_sorted)}
    if canary.requests == 0:
        return Verdict(Outcome.HOLD, "no traffic: the canary saw no request in this window",
                       now, figures)
    low = [(name, arm.requests) for name, arm in (("stable", stable), ("canary", canary))
           if arm.requests < settings.min_requests]
    if low:
        said = ", ".join(f"{name} {n}" for name, n in low)
        return Verdict(Outcome.WAIT, f"too little data: {said} of {settings.min_requests} "
                                     "requests needed per arm", now, figures)
    verdict = _absolute(canary, c_sorted, settings, now, figures)
    if verdict is None:
        verdict = _errors(stable, canary, settings, now, figures)
    if verdict is None:
        verdict = _latency(s_sorted, c_sorted, settings, now, figures)
    if verdict is not None:
        return verdict
    return Verdict(Outcome.PROMOTE, "passed: no error or latency regression found", now,
                   figures)


def _absolute(canary: ArmFigures, c_sorted: list[float], settings: JudgeSettings, now: float,
              figures: dict[str, Any]) -> Verdict | None:
    rate = canary.errors / canary.requests
    if settings.max_error_rate is not None and rate > settings.max_error_rate:
        return Verdict(Outcome.ROLLBACK, f"error rate {rate:.4f} above max_error_rate "
                                         f"{settings.max_error_rate}", now, figures)
    p99 = quantile(c_sorted, 0.99)
    if settings.max_p99 is not None and p99 is not None and p99 > settings.max_p99:
        return Verdict(Outcome.ROLLBACK, f"p99 {p99 * 1000:.1f} ms above max_p99 "
                                         f"{settings.max_p99 * 1000:.1f} ms", now, figures)
    return None


def _errors(stable: ArmFigures, canary: ArmFigures, settings: JudgeSettings, now: float,
            figures: dict[str, Any]) -> Verdict | None:
    test = two_proportion(stable.errors, stable.requests, canary.errors, canary.requests)
    if test is None:
        return None
    figures["errors_z"] = round(test.z, 4)
    figures["errors_p"] = test.p_value
    increase = canary.errors / canary.requests - stable.errors / stable.requests
    if increase >= settings.min_error_increase and test.p_value < settings.alpha:
        return Verdict(Outcome.ROLLBACK,
                       f"error rate up {increase * 100:.2f} points (p={test.p_value:.2g} < "
                       f"{settings.alpha})", now, figures)
    return None


def _latency(s_sorted: list[float], c_sorted: list[float], settings: JudgeSettings,
             now: float, figures: dict[str, Any]) -> Verdict | None:
    if len(s_sorted) < settings.min_samples or len(c_sorted) < settings.min_samples:
        return None
    test = mann_whitney_greater(c_sorted, s_sorted)
    s50, c50 = quantile(s_sorted, 0.5), quantile(c_sorted, 0.5)
    if test is None or s50 is None or c50 is None:
        return None
    figures["latency_u"] = test.statistic
    figures["latency_p"] = test.p_value
    slower = (c50 > s50 * (1.0 + settings.min_latency_increase)
              and c50 - s50 >= settings.min_latency_delta)
    if slower and test.p_value < settings.alpha:
        return Verdict(Outcome.ROLLBACK,
                       f"latency up: median {c50 * 1000:.1f} ms vs {s50 * 1000:.1f} ms "
                       f"(Mann-Whitney p={test.p_value:.2g} < {settings.alpha})",
                       now, figures)
    return None
