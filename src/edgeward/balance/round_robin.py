"""round_robin and weighted (nginx's smooth weighted round robin).

Smooth WRR (nginx `ngx_http_upstream_get_peer`): every pick, each endpoint's `current` grows by
its weight, the largest `current` wins and loses the total weight. Over a cycle of W = sum of
weights picks each endpoint is chosen exactly `weight` times and the state returns to zero, and
picks are spread: after k picks of a cycle no endpoint has more than k*w/W + 1 of them (its
`current` never drops to -W). Because the cycle repeats exactly, we compute it once per
rebuild and `pick` walks it: O(1), no allocation. Cycles longer than SCHEDULE_LIMIT (huge,
co-prime weights) fall back to nginx's O(n) per-pick loop.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import reduce
from math import gcd

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.options import BalancerOptions

# Longest precomputed cycle: 64 Ki list slots (512 KiB) per upstream at most. Weights are
# reduced by their gcd first, so typical weights (1..100 over tens of endpoints) fit easily.
SCHEDULE_LIMIT = 65536
# Computing a cycle costs its length times the number of endpoints; past this many steps (a
# fraction of a second in CPython) the cycle is not precomputed either.
SCHEDULE_WORK_LIMIT = 4 * 1024 * 1024


def smooth_wrr_cycle(weights: Sequence[int]) -> list[int]:
    """One full cycle of nginx smooth WRR over `weights`: the index picked at each step."""
    total = sum(weights)
    current = [0] * len(weights)
    order: list[int] = []
    for _ in range(total):
        best = 0
        for i, w in enumerate(weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= total
        order.append(best)
    return order


class RoundRobinBalancer(Balancer):
    """Each live endpoint in turn, starting at a random offset so workers do not march in step."""

    __slots__ = ("_next",)

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._next = 0

    def _rebuild(self) -> None:
        n = len(self._live)
        self._next = int(self._rng.random() * n) if n else 0

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        live = self._live
        i = self._next
        if i >= len(live):
            if not live:
                return None
            i = 0
        self._next = i + 1
        return live[i]


class WeightedBalancer(Balancer):
    """nginx smooth weighted round robin over the live endpoints."""

    __slots__ = ("_schedule", "_pos", "_weights", "_current", "_total")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._schedule: list[Endpoint] = []
        self._pos = 0
        self._weights: list[int] = []
        self._current: list[int] = []
        self._total = 0

    def _rebuild(self) -> None:
        live = self._live
        divisor = reduce(gcd, (e.weight for e in live), 0) or 1
        self._weights = [e.weight // divisor for e in live]
        self._total = sum(self._weights)
        self._current = [0] * len(live)
        if self._total <= SCHEDULE_LIMIT and self._total * len(live) <= SCHEDULE_WORK_LIMIT:
            self._schedule = [live[i] for i in smooth_wrr_cycle(self._weights)]
        else:
            self._schedule = []
        # Start somewhere in the cycle so several workers do not send their first picks to the
        # same heaviest endpoint; any window of one cycle length still holds exact weights.
        self._pos = int(self._rng.random() * self._total) if self._total else 0

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        schedule = self._schedule
        if schedule:
            i = self._pos
            if i >= len(schedule):
                i = 0
            self._pos = i + 1
            return schedule[i]
        if not self._live:
            return None
        return self._pick_slow()

    def _pick_slow(self) -> Endpoint:
        current = self._current
        best = 0
        for i, w in enumerate(self._weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self._live[best]
