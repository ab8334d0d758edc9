"""ring_hash: ketama-style consistent hashing with virtual nodes (Envoy RING_HASH).

Each endpoint owns `max(1, round(per_weight * weight))` points at hash64("<key>#<j>"); a request
key goes to the first point at or after it (wrapping). `per_weight` is chosen so the ring has
about `ring_size` points: `ceil(ring_size / total weight)` while weights are small, and the
fraction `ring_size / total weight` once the total weight exceeds `ring_size` (weights are
scaled down, as Envoy scales them to its ring size). It is kept across membership changes
while the ring stays within 1/2x..4x of that target: then removing an endpoint moves only the
keys it owned (about 1/N) and no key moves between the others; adding one takes about 1/(N+1)
from the rest. When the ring leaves that band it is rescaled once, which moves some extra keys.
Availability flips never rescale. So the ring never holds more than about
RESCALE_ABOVE * ring_size points plus one per endpoint, whatever the weights (a registry entry
of weight 65,535 next to weight-1 endpoints builds a ring of ~4,100 points, not 65,536).
Ties between equal point hashes are broken by endpoint key, so every worker and host builds the
same ring whatever order discovery lists the endpoints in.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left

from edgeward.balance.endpoint import Endpoint
from edgeward.balance.hashed import HashedBalancer
from edgeward.balance.hashing import hash64
from edgeward.balance.options import BalancerOptions

# Rescale only when the ring drifts outside [target / RESCALE_BELOW, target * RESCALE_ABOVE].
RESCALE_BELOW = 2
RESCALE_ABOVE = 4


class RingHashBalancer(HashedBalancer):
    __slots__ = ("_ring_size", "_per_weight", "_points", "_hashes", "_owner")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._ring_size = options.ring_size
        self._per_weight = 0.0
        self._points: dict[str, list[int]] = {}   # endpoint key -> its point hashes, cached
        self._hashes: list[int] = []
        self._owner: list[int] = []

    @property
    def points_per_weight(self) -> float:
        return self._per_weight

    def _membership_changed(self) -> None:
        total = sum(e.weight for e in self._members)
        if total:
            size = self._per_weight * total
            target = self._ring_size
            if not target / RESCALE_BELOW <= size <= target * RESCALE_ABOVE:
                self._per_weight = (float(math.ceil(target / total)) if total <= target
                                    else target / total)
        keys = {e.key for e in self._members}
        self._points = {k: v for k, v in self._points.items() if k in keys}

    def _endpoint_points(self, endpoint: Endpoint) -> list[int]:
        count = max(1, round(self._per_weight * endpoint.weight))
        points = self._points.get(endpoint.key)
        if points is None or len(points) < count:
            start = len(points) if points else 0
            points = (points or []) + [hash64(f"{endpoint.key}#{j}") for j in range(start, count)]
            self._points[endpoint.key] = points
        return points[:count]

    def _rebuild(self) -> None:
        entries: list[tuple[int, str, int]] = []
        for index, endpoint in enumerate(self._live):
            key = endpoint.key
            entries.extend((h, key, index) for h in self._endpoint_points(endpoint))
        entries.sort()
        self._hashes = [h for h, _, _ in entries]
        self._owner = [index for _, _, index in entries]
        self._next = int(self._rng.random() * len(self._live)) if self._live else 0

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        if hash_key is None:
            return self._fallback()
        hashes = self._hashes
        if not hashes:
            return None
        slot = bisect_left(hashes, hash_key)
        if slot == len(hashes):
            slot = 0
        if self._factor is None:
            return self._live[self._owner[slot]]
        return self._pick_slot(self._owner, slot)
