"""The canary judge and controller at the default settings, simulated with a fake clock.

    python benchmarks/canary_simulation.py [--runs 1000] [--rps 100] [--seed 1]

Traffic of `--rps` requests per second arrives evenly over each tick (step_interval / 4, as
the worker ticks), split between the arms by the weight; each request errs with the arm's
error rate and takes a log-normal duration (median 20 ms, sigma 0.5) plus the arm's extra
latency; every duration goes through the same bounded reservoir the gateway keeps.

1. False rollbacks: identical versions (1 % errors, same latency) through whole rollouts;
   the fraction of rollouts that roll back anyway, and of windows judged.
2. Time to weight 0: a fault injected on the canary at a random moment of a rollout already
   at step 2 (weight 20) — 5 % errors, or +50 ms on every request — until the rollback.
"""

from __future__ import annotations

import argparse
import random
import statistics

from edgeward.canary.arms import ArmWindow
from edgeward.canary.config import CanaryConfig
from edgeward.canary.controller import CanaryController, Phase
from edgeward.canary.judge import ArmFigures

DEFAULTS = CanaryConfig(stable="stable", canary="canary")
STEPS = DEFAULTS.steps()
JUDGE = DEFAULTS.judge_settings()  # the per-look alpha the gateway uses
TICK = STEPS.step_interval / 4
MEDIAN = 0.020
BASE_ERRORS = 0.01


class Arm:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.window = ArmWindow(512, rng)
        self.error_rate = BASE_ERRORS
        self.extra = 0.0

    def serve(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            duration = MEDIAN * rng.lognormvariate(0.0, 0.5) + self.extra
            self.window.record(duration, rng.random() < self.error_rate)

    def figures(self) -> ArmFigures:
        r, e, s = self.window.figures()
        return ArmFigures(r, e, s)


def tick(c: CanaryController, stable: Arm, canary: Arm, now: float, rps: float,
         rng: random.Random) -> str | None:
    n = int(rps * TICK)
    to_canary = sum(rng.random() * 100 < c.weight for _ in range(n))
    stable.serve(n - to_canary)
    canary.serve(to_canary)
    d = c.tick(now, stable.figures(), canary.figures())
    if d is not None and d.new_window:
        stable.window.reset()
        canary.window.reset()
    return None if d is None else d.kind


def rollout(rng: random.Random, rps: float) -> tuple[bool, int]:
    """One whole rollout of identical versions: (rolled back, windows judged)."""
    c = CanaryController(STEPS, JUDGE, 0.0)
    c.start(0.0)
    stable, canary = Arm(rng), Arm(rng)
    now, judged = 0.0, 0
    while c.phase is Phase.PROGRESSING:
        now += TICK
        kind = tick(c, stable, canary, now, rps, rng)
        judged += kind in ("advance", "confirm", "rollback")
        if kind == "confirm":
            c.confirm(now, True, "ok")
    return c.phase is Phase.ROLLED_BACK, judged


def time_to_rollback(rng: random.Random, rps: float, fault: str) -> float:
    c = CanaryController(STEPS, JUDGE, 0.0)
    c.start(0.0)
    stable, canary = Arm(rng), Arm(rng)
    now = 0.0
    while c.weight < 20:  # healthy up to step 2 (begun again after a false rollback)
        now += TICK
        tick(c, stable, canary, now, rps, rng)
        if c.phase is Phase.ROLLED_BACK:
            c.start(now)
    injected = now + rng.random() * STEPS.step_interval
    while now < injected:
        now += TICK
        tick(c, stable, canary, now, rps, rng)
    if fault == "errors":
        canary.error_rate = 0.05
    else:
        canary.extra = 0.050
    while c.phase is not Phase.ROLLED_BACK:
        now += TICK
        tick(c, stable, canary, now, rps, rng)
        assert now - injected < 3600, "no rollback within an hour"
    return now - injected


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--rps", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    results = [rollout(rng, args.rps) for _ in range(args.runs)]
    false = sum(r for r, _ in results)
    windows = sum(w for _, w in results)
    print(f"identical versions, {args.rps:g} req/s, defaults (10 -> 50 %, 1m steps, "
          f"alpha {DEFAULTS.analysis.alpha} per rollout): {false} of {args.runs} rollouts "
          f"rolled back ({false / args.runs:.2%}), {windows} windows judged")
    for fault in ("errors", "latency"):
        times = [time_to_rollback(rng, args.rps, fault) for _ in range(max(10, args.runs // 20))]
        label = "5 % errors" if fault == "errors" else "+50 ms"
        print(f"fault {label} at weight 20, {args.rps:g} req/s: weight 0 after median "
              f"{statistics.median(times):.0f} s, max {max(times):.0f} s "
              f"({len(times)} runs)")


if __name__ == "__main__":
    main()
