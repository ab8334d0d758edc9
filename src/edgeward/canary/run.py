"""One route's canary as the worker runs it: the arms the filter records into, the controller,
and what each decision did (history, counts, log line). No I/O but the log.

`CanaryRun` lives in the compose registry keyed by the route's name and its `canary:` config,
so a reload that leaves the canary's config alone keeps its phase, weight and window; a
changed config starts a new canary. `CanaryBook` is the worker's index of the runs of the
snapshot in force, read by the runner (ticks, webhooks), the admin API and metrics.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from typing import Any, Final

from edgeward.canary.arms import CanaryArms
from edgeward.canary.config import CanaryConfig
from edgeward.canary.controller import FINAL, CanaryController, Decision, Phase
from edgeward.canary.filter import CanaryFilter
from edgeward.canary.fleetstate import restore
from edgeward.canary.judge import ArmFigures
from edgeward.canary.stats import quantile
from edgeward.routing.config import WhenConfig
from edgeward.routing.keys import parse_key
from edgeward.routing.split import Condition

log = logging.getLogger("edgeward.canary")

# Decisions kept per canary for the admin API and the dashboard (a rollout of ten steps with
# waits and holds fits several times over).
HISTORY: Final = 200


def _condition(when: WhenConfig | None) -> Condition | None:
    if when is None:
        return None
    return Condition(headers=when.header, cookies=when.cookie)


class CanaryRun:
    def __init__(self, route: str, config: CanaryConfig, rng: random.Random, now: float,
                 totals: Counter[tuple[str, str]] | None = None) -> None:
        self.route = route
        self.config = config
        self.arms = CanaryArms(config.stable, config.canary, config.analysis.samples, rng)
        self.controller = CanaryController(config.steps(), config.judge_settings(), now)
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.counts: Counter[str] = Counter()
        self.last: Decision | None = None
        self.totals: Counter[tuple[str, str]] = totals if totals is not None else Counter()
        self.window = -1      # a fleet canary's window number in force (fleetstate.py)
        # Recorded, not logged: `edgeward validate` compiles configs too. A fleet canary
        # starts from the state in etcd (canary/fleet.py).
        if config.autostart and config.fleet is None:
            self.apply(self.controller.start(now, "started with the configuration"), log_it=False)

    def make_filter(self, rng: random.Random) -> CanaryFilter:
        c = self.config
        return CanaryFilter(self.arms, self.route,
                            sticky=parse_key(c.sticky_key) if c.sticky_key else None,
                            force_canary=_condition(c.force_canary),
                            force_stable=_condition(c.force_stable), rng=rng)

    def figures(self) -> tuple[ArmFigures, ArmFigures]:
        s, c = self.arms.stable.figures(), self.arms.canary.figures()
        return ArmFigures(s[0], s[1], s[2]), ArmFigures(c[0], c[1], c[2])

    def rolling_out(self) -> bool:
        """Whether the canary arm takes traffic under judgement now (for the breaker rule)."""
        return self.controller.phase not in FINAL and self.controller.phase is not Phase.IDLE

    def latency_ratio(self) -> float | None:
        """The canary arm's p99 over the stable arm's in the window, when both arms have the
        judge's minimum of samples (else None: too little to say)."""
        stable, canary = self.figures()
        need = self.config.analysis.min_samples
        if len(stable.durations) < need or len(canary.durations) < need:
            return None
        base = quantile(sorted(stable.durations), 0.99)
        current = quantile(sorted(canary.durations), 0.99)
        if base is None or current is None or not base > 0.0:
            return None
        return current / base

    def tick(self, now: float) -> Decision | None:
        stable, canary = self.figures()
        decision = self.controller.tick(now, stable, canary)
        if decision is not None:
            self.apply(decision)
        return decision

    def apply(self, d: Decision, log_it: bool = True) -> Decision:
        """Make a decision take effect: the weight at once, a new window when it says so."""
        self.arms.set_weight(d.weight)
        if d.new_window:
            self.arms.reset()
        self.last = d
        self.counts[d.kind] += 1
        self.totals[(self.route, d.kind)] += 1
        self.history.append({"time": time.time(), **d.as_dict()})
        if not log_it:
            return d
        level = logging.WARNING if d.kind in ("rollback", "abort") else logging.INFO
        log.log(level, "canary %s: %s, weight %d -> %d (%s): %s", self.route, d.kind,
                d.weight_before, d.weight, d.phase.value, d.reason)
        return d

    def apply_state(self, state: dict[str, Any]) -> None:
        """A fleet canary's shared state (canary/fleet.py): the controller takes its phase,
        weight and step, the arms its weight; a new window number resets the arms, and the
        decisions not seen yet join the history."""
        restore(self.controller, state)
        self.arms.set_weight(self.controller.weight)
        window = int(state.get("window", 0))
        if window != self.window:
            self.arms.reset()
            self.window = window
        seen = self.history[-1]["time"] if self.history else 0.0
        for d in state.get("decisions", []):
            if isinstance(d, dict) and float(d.get("time", 0.0)) > seen:
                self.history.append(d)
                self.counts[str(d.get("decision"))] += 1
                self.totals[(self.route, str(d.get("decision")))] += 1

    def view(self, now: float) -> dict[str, Any]:
        stable, canary = self.figures()
        c = self.config
        if c.fleet is not None:
            now = time.time()       # a fleet state's times are wall-clock (fleetstate.py)
        return {"route": self.route, "stable": c.stable, "canary": c.canary,
                **self.controller.view(now),
                "window": {"stable": {"requests": stable.requests, "errors": stable.errors},
                           "canary": {"requests": canary.requests, "errors": canary.errors}},
                "decisions": dict(self.counts),
                "history": list(self.history)}


class CanaryBook:
    """The canary runs of the snapshot in force (set once a compile succeeds)."""

    def __init__(self) -> None:
        self.runs: dict[str, CanaryRun] = {}
        self.pending: dict[str, CanaryRun] = {}
        self.clusters: dict[str, Any] = {}
        # Decisions per (route, kind) since the worker started, across reloads (metrics).
        self.totals: Counter[tuple[str, str]] = Counter()

    def weights(self) -> dict[str, int]:
        return {route: run.arms.weight for route, run in self.runs.items()}
