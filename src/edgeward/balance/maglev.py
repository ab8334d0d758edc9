"""maglev: Google's Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy MAGLEV).

Each endpoint has a permutation of the table slots given by offset = h1 % M and
skip = h2 % (M - 1) + 1 (M prime, so every skip visits every slot). Endpoints take turns
claiming their next unclaimed preferred slot until the table is full; weights make an endpoint
take a turn in `weight / max_weight` of the rounds (as Envoy does). Lookup is table[key % M]:
O(1). The table gives near-equal shares (each endpoint within a few slots of M/N) at the cost
of slightly weaker stability than a ring: removing one of N endpoints moves its own keys plus a
small fraction of the others' keys (measured: under 0.5 % of them for N = 3..50; the tests
allow 2 %). Endpoints are filled in key
order, so every worker builds the same table whatever order discovery lists them in.

Building the table costs about M * ln(M) probes (~40-80 ms in CPython for M = 65537), paid in
set_endpoints/refresh, never in `pick`. Turns are scheduled by a heap of each entry's next
claiming round, so unequal weights (up to MAX_WEIGHT to 1) cost M * log(N) steps, not a pass
over every entry for each of up to M rounds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from edgeward.balance.endpoint import Endpoint
from edgeward.balance.hashed import HashedBalancer
from edgeward.balance.hashing import hash64
from edgeward.balance.options import BalancerOptions

# Envoy's default maglev table_size and the paper's example: a prime well above 100 x the
# number of endpoints, so shares stay within about 1 % of each other.
MAGLEV_TABLE_SIZE = 65537


def maglev_table(prefs: Sequence[tuple[int, int]], weights: Sequence[int], size: int) -> list[int]:
    """Fill a table of `size` (prime) slots; `prefs[i]` = (offset, skip) of entry i."""
    n = len(prefs)
    table = [0] * size
    if n == 0:
        return []
    taken = bytearray(size)
    position = [offset for offset, _ in prefs]
    skips = [skip for _, skip in prefs]
    top = max(weights)
    # Entry i gains weights[i] credit per round and claims a slot whenever its credit reaches
    # `top`: its k-th claim falls in round ceil(k * top / weights[i]). Within a round entries
    # claim in index order, so the heap orders by (round, index).
    claims = [0] * n
    turns = [(_claim_round(1, top, weights[i]), i) for i in range(n)]
    heapq.heapify(turns)
    filled = 0
    while True:
        _, i = turns[0]
        c = position[i]
        skip = skips[i]
        while taken[c]:
            c += skip
            if c >= size:
                c -= size
        taken[c] = 1
        table[c] = i
        c += skip
        position[i] = c - size if c >= size else c
        filled += 1
        if filled == size:
            return table
        claims[i] += 1
        heapq.heapreplace(turns, (_claim_round(claims[i] + 1, top, weights[i]), i))


def _claim_round(k: int, top: int, weight: int) -> int:
    """The round of an entry's k-th claim: ceil(k * top / weight)."""
    return -((-k * top) // weight)


class MaglevBalancer(HashedBalancer):
    __slots__ = ("_table", "_prefs")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._table: list[int] = []
        self._prefs: dict[str, tuple[int, int]] = {}

    def _membership_changed(self) -> None:
        keys = {e.key for e in self._members}
        self._prefs = {k: v for k, v in self._prefs.items() if k in keys}

    def _pref(self, key: str) -> tuple[int, int]:
        pref = self._prefs.get(key)
        if pref is None:
            size = MAGLEV_TABLE_SIZE
            pref = (hash64(key) % size, hash64(key + "#skip") % (size - 1) + 1)
            self._prefs[key] = pref
        return pref

    def _rebuild(self) -> None:
        live = self._live
        order = sorted(range(len(live)), key=lambda i: live[i].key)
        filled = maglev_table(
            [self._pref(live[i].key) for i in order],
            [live[i].weight for i in order],
            MAGLEV_TABLE_SIZE,
        )
        self._table = [order[slot] for slot in filled]
        self._next = int(self._rng.random() * len(live)) if live else 0

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        if hash_key is None:
            return self._fallback()
        table = self._table
        if not table:
            return None
        if self._factor is None:
            return self._live[table[hash_key % MAGLEV_TABLE_SIZE]]
        return self._pick_slot(table, hash_key % MAGLEV_TABLE_SIZE)
