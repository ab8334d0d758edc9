"""least_request: Envoy's weighted least request.

Equal weights: power of two choices (Mitzenmacher) - sample two distinct live endpoints at
random and take the one with fewer requests in flight. O(1); the endpoint with the strictly
highest `active` is never picked while n >= 2, so it drains.

Unequal weights: P2C would ignore the weights, so, as Envoy does, an earliest-deadline-first
schedule whose weights are recomputed whenever an endpoint is rescheduled:
    effective weight = weight / (active + 1) ** active_request_bias
A bias of 0 gives plain weighted round robin; larger biases react harder to load. O(log n)
per pick (one heap replace).
"""

from __future__ import annotations

import heapq
import random

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.options import BalancerOptions


class LeastRequestBalancer(Balancer):
    __slots__ = ("_bias", "_equal", "_heap", "_seq")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._bias = options.active_request_bias
        self._equal = True
        # (deadline, tie-break sequence, index into _live)
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0

    def _rebuild(self) -> None:
        live = self._live
        self._equal = len({e.weight for e in live}) <= 1
        self._heap = []
        if not self._equal:
            # Random first deadlines within one period: workers do not start in step.
            rnd = self._rng.random
            self._heap = [(rnd() / e.weight, i, i) for i, e in enumerate(live)]
            heapq.heapify(self._heap)
            self._seq = len(live)

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        live = self._live
        n = len(live)
        if n < 2:
            return live[0] if n else None
        if not self._equal:
            return self._pick_edf(live)
        # One draw for both picks: the fraction left after choosing i is uniform again.
        x = self._rng.random() * n
        i = int(x)
        j = int((x - i) * (n - 1))
        if j >= i:
            j += 1
        first, second = live[i], live[j]
        return second if second.active < first.active else first

    def _pick_edf(self, live: list[Endpoint]) -> Endpoint:
        heap = self._heap
        deadline, _, i = heap[0]
        endpoint = live[i]
        bias = self._bias
        if bias == 1.0:
            effective = endpoint.weight / (endpoint.active + 1)
        elif bias == 0.0:
            effective = float(endpoint.weight)
        else:
            effective = endpoint.weight / (endpoint.active + 1) ** bias
        self._seq += 1
        heapq.heapreplace(heap, (deadline + 1.0 / effective, self._seq, i))
        return endpoint
