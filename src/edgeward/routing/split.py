"""TrafficSplit: which upstream of a route a request goes to (gray / canary release).

Entries are tried in config order:
  1. Conditional entries (with `when`): header equals, cookie equals, and/or percent_of — the
     request's key hashes (hash64, stable across workers and hosts) into one of 10,000 buckets and
     is inside when bucket < percent * 100. The first entry whose conditions all hold wins. A
     request without the key (no such header/cookie) is never inside a percent_of slice.
  2. Otherwise the default entries (without `when`) share the traffic by weight: a per-request
     draw from the injected `random.Random`, or, if a `sticky_key` is given and the request
     carries it, by hash64(key) so the same key always lands on the same entry.

A split always has a default entry with weight > 0 (the constructor refuses otherwise, as does
`split_problems` at config time), so `choose` always returns a value.

percent_of properties that users rely on: the same key always gets the same answer (sticky);
raising the percent only adds keys (everyone already in the canary stays in); the hash is not
salted by route, so the same users form the canary cohort on every route with the same percent.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Generic, TypeVar

from edgeward.balance.hashing import hash64
from edgeward.request import RequestView
from edgeward.routing.config import PERCENT_BUCKETS, SplitEntryConfig, split_problems
from edgeward.routing.keys import KeySpec, parse_key

T = TypeVar("T")


def percent_bucket(key: str) -> int:
    """The bucket 0..9999 of `key` for percent_of decisions (stable across processes)."""
    return hash64(key) % PERCENT_BUCKETS


class Condition:
    """A compiled `when`: all of header equals, cookie equals, and percent_of must hold."""

    __slots__ = ("headers", "cookies", "key", "threshold")

    def __init__(
        self,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        key: KeySpec | None = None,
        percent: float | None = None,
    ) -> None:
        if (key is None) != (percent is None):
            raise ValueError("percent_of needs both key and percent")
        if percent is not None and not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be between 0 and 100, got {percent}")
        self.headers = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self.cookies = tuple((cookies or {}).items())
        self.key = key
        # bucket < threshold is inside; round() so 12.34% is exactly 1234 buckets.
        self.threshold = round(percent * (PERCENT_BUCKETS // 100)) if percent is not None else 0
        if not self.headers and not self.cookies and key is None:
            raise ValueError("a condition needs at least one of header, cookie, percent_of")

    def holds(self, req: RequestView, route_name: str) -> bool:
        for name, value in self.headers:
            if req.header(name) != value:
                return False
        for name, value in self.cookies:
            if req.cookie(name) != value:
                return False
        key = self.key
        if key is not None:
            k = key.extract(req, route_name)
            if k is None or hash64(k) % PERCENT_BUCKETS >= self.threshold:
                return False
        return True


class TrafficSplit(Generic[T]):
    """Chooses one value per request from conditional entries, then weighted default entries."""

    __slots__ = ("_conditional", "_values", "_cumulative", "_total", "_rng", "_sticky")

    def __init__(
        self,
        conditional: Sequence[tuple[Condition, T]],
        weighted: Sequence[tuple[T, int]],
        rng: random.Random,
        sticky_key: KeySpec | None = None,
    ) -> None:
        for value, weight in weighted:
            if weight < 0:
                raise ValueError(f"weight must be >= 0, got {weight} for {value!r}")
        live = [(v, w) for v, w in weighted if w > 0]
        if not live:
            raise ValueError(
                "a split needs a default entry (without `when`) with weight > 0 for requests "
                "that match no condition"
            )
        self._conditional = tuple(conditional)
        self._values = tuple(v for v, _ in live)
        self._cumulative = tuple(accumulate(w for _, w in live))
        self._total = self._cumulative[-1]
        self._rng = rng
        self._sticky = sticky_key

    @classmethod
    def from_config(
        cls,
        entries: Sequence[SplitEntryConfig],
        resolve: Callable[[str], T],
        rng: random.Random,
        *,
        sticky_key: KeySpec | None = None,
    ) -> TrafficSplit[T]:
        """Compile checked config entries; `resolve` maps an upstream name to its value."""
        return cls.from_entries(entries, lambda e: resolve(e.upstream), rng,
                                sticky_key=sticky_key)

    @classmethod
    def from_entries(
        cls,
        entries: Sequence[SplitEntryConfig],
        resolve: Callable[[SplitEntryConfig], T],
        rng: random.Random,
        *,
        sticky_key: KeySpec | None = None,
    ) -> TrafficSplit[T]:
        """As from_config, with `resolve` mapping each whole entry to its value."""
        problems = split_problems(entries)
        if problems:
            raise ValueError("; ".join(f"{k}: {r}" for k, r in problems))
        conditional: list[tuple[Condition, T]] = []
        weighted: list[tuple[T, int]] = []
        for e in entries:
            if e.when is None:
                weighted.append((resolve(e), e.weight))
                continue
            p = e.when.percent_of
            cond = Condition(
                headers=e.when.header,
                cookies=e.when.cookie,
                key=parse_key(p.key) if p else None,
                percent=p.percent if p else None,
            )
            conditional.append((cond, resolve(e)))
        return cls(conditional, weighted, rng, sticky_key)

    @classmethod
    def single(cls, value: T) -> TrafficSplit[T]:
        """A route with one upstream and no split: `choose` always returns `value`."""
        return cls((), ((value, 1),), random.Random(0))

    def choose(self, req: RequestView, route_name: str) -> T:
        for cond, value in self._conditional:
            if cond.holds(req, route_name):
                return value
        values = self._values
        if len(values) == 1:
            return values[0]
        sticky = self._sticky
        if sticky is not None:
            k = sticky.extract(req, route_name)
            if k is not None:
                return values[bisect_right(self._cumulative, hash64(k) % self._total)]
        i = bisect_right(self._cumulative, self._rng.random() * self._total)
        return values[i if i < len(values) else -1]  # float rounding can reach the total

    def __repr__(self) -> str:
        weights = [self._cumulative[0]] + [
            b - a for a, b in zip(self._cumulative, self._cumulative[1:], strict=False)
        ]
        return (
            f"<TrafficSplit conditional={len(self._conditional)} "
            f"weighted={list(zip(self._values, weights, strict=True))}>"
        )
