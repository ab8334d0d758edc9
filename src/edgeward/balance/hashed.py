"""Shared parts of the hash-based balancers (ring_hash, maglev).

A hash balancer maps a 64-bit key (from `hashing.hash64` of the `hash_on` value) to a slot in
an `owner` table (ring points or the maglev table) holding indexes into the live endpoints.
Without a key (the header is absent) it falls back to round robin over the live endpoints.

Bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads";
Envoy `hash_balance_factor`): with N = total in-flight + 1 and W the live weight, endpoint e
may take the request only if `e.active + 1 <= ceil(factor * N * e.weight / W)`; otherwise the
walk moves on through the table to the next slot. Since the bounds add up to at least N, one
endpoint always qualifies within one lap. Reading the in-flight total is O(live endpoints)
per pick; that cost is only paid when bounded load is switched on.
"""

from __future__ import annotations

import math
import random

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.options import BalancerOptions


class HashedBalancer(Balancer):
    __slots__ = ("_factor", "_next")

    needs_hash_key = True

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._factor = options.hash_balance_factor
        self._next = 0

    def _fallback(self) -> Endpoint | None:
        live = self._live
        i = self._next
        if i >= len(live):
            if not live:
                return None
            i = 0
        self._next = i + 1
        return live[i]

    def _pick_slot(self, owner: list[int], slot: int) -> Endpoint:
        factor = self._factor
        live = self._live
        if factor is None:
            return live[owner[slot]]
        in_flight = 1
        for endpoint in live:
            in_flight += endpoint.active
        scale = factor * in_flight / self._live_weight
        size = len(owner)
        i = slot
        for _ in range(size):
            endpoint = live[owner[i]]
            if endpoint.active < math.ceil(scale * endpoint.weight):
                return endpoint
            i += 1
            if i == size:
                i = 0
        return live[owner[slot]]  # not reached: the bounds sum to at least in_flight
