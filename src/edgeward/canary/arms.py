"""Per-arm figures gathered on the request path (compiled; no locks: one event loop per worker).

`ArmWindow.record(duration, error)` is two integer adds and, for the duration sample, one
append or one draw: a bounded reservoir (Vitter's algorithm R) keeps at most `cap` durations,
each request of the window equally likely to be in it, so memory is fixed whatever the
traffic. The shell reads `figures()` on each tick and calls `reset()` when a new step window
begins. `CanaryArms` holds both arms and the canary's share in buckets of 10,000 (the
`percent_of` resolution), which the filter reads per request and the controller sets.
"""

from __future__ import annotations

import random
from typing import Final

BUCKETS: Final = 10_000


class ArmWindow:
    __slots__ = ("requests", "errors", "samples", "cap", "rng")

    def __init__(self, cap: int, rng: random.Random) -> None:
        if cap < 1:
            raise ValueError(f"a reservoir needs room for at least 1 sample, got {cap}")
        self.requests = 0
        self.errors = 0
        self.samples: list[float] = []
        self.cap = cap
        self.rng = rng

    def record(self, duration: float, error: bool) -> None:
        n = self.requests = self.requests + 1
        if error:
            self.errors += 1
        samples = self.samples
        if len(samples) < self.cap:
            samples.append(duration)
            return
        j = int(self.rng.random() * n)
        if j < self.cap:
            samples[j] = duration

    def figures(self) -> tuple[int, int, list[float]]:
        """(requests, errors, a copy of the sampled durations) of the window so far."""
        return self.requests, self.errors, list(self.samples)

    def reset(self) -> None:
        self.requests = 0
        self.errors = 0
        self.samples = []

    def __repr__(self) -> str:
        return f"<ArmWindow requests={self.requests} errors={self.errors} " \
               f"samples={len(self.samples)}>"


class CanaryArms:
    """The two arms of one canary route and the canary's share (0..10,000 buckets)."""

    __slots__ = ("stable_name", "canary_name", "stable", "canary", "threshold")

    def __init__(self, stable_name: str, canary_name: str, cap: int, rng: random.Random
                 ) -> None:
        self.stable_name = stable_name
        self.canary_name = canary_name
        self.stable = ArmWindow(cap, rng)
        self.canary = ArmWindow(cap, rng)
        self.threshold = 0

    def set_weight(self, percent: int) -> None:
        self.threshold = max(0, min(BUCKETS, percent * (BUCKETS // 100)))

    @property
    def weight(self) -> int:
        return self.threshold // (BUCKETS // 100)

    def reset(self) -> None:
        self.stable.reset()
        self.canary.reset()
