"""Balancer: the interface every load balancer implements, and the availability/panic rule.

Rules shared by all balancers:
  - `set_endpoints` replaces the membership (discovery or a reload changed it); per-endpoint
    state of endpoints whose key stays is kept (peak EWMA cost, ring points).
  - `refresh` re-reads `available` flags after health checks or outlier detection flip one;
    `pick` never rescans endpoints, it uses the live set chosen by the last refresh.
  - The live set is the available endpoints, unless their share of the total weight is below
    `panic_threshold`: then it is every endpoint (Envoy's panic mode), so a fleet that is
    mostly marked down still gets traffic instead of overloading the survivors.
  - No endpoints (or none live with panic disabled) -> `pick` returns None.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from edgeward.balance.endpoint import Endpoint
from edgeward.balance.options import BalancerOptions


class Balancer(ABC):
    """Chooses an endpoint per request. Sans-I/O: time comes in as `now`, randomness via `rng`."""

    __slots__ = ("_members", "_live", "_live_weight", "_panic", "_panic_threshold", "_rng")

    needs_hash_key: ClassVar[bool] = False

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        self._panic_threshold = options.panic_threshold
        self._rng = rng
        self._members: tuple[Endpoint, ...] = ()
        self._live: list[Endpoint] = []
        self._live_weight = 0
        self._panic = False

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every member, available or not."""
        return self._members

    @property
    def live(self) -> Sequence[Endpoint]:
        """The endpoints `pick` chooses among (available ones, or all of them in panic)."""
        return self._live

    @property
    def panicking(self) -> bool:
        """True while the available share is below panic_threshold (worth a gauge)."""
        return self._panic

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the membership; rebuild tables; keep state of endpoints whose key stays."""
        members = tuple(endpoints)
        seen: set[str] = set()
        for endpoint in members:
            if endpoint.key in seen:
                raise ValueError(f"duplicate endpoint {endpoint.key!r} in endpoints")
            seen.add(endpoint.key)
        self._members = members
        self._membership_changed()
        self._select_live(force=True)

    def refresh(self) -> bool:
        """Re-read availability flags; return True if the set `pick` uses changed."""
        return self._select_live(force=False)

    @abstractmethod
    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        """The endpoint for the next request, or None when there is none to pick."""

    def record(self, endpoint: Endpoint, latency: float, now: float) -> None:
        """Feed back a completed request's latency in seconds (used by peak_ewma only)."""
        return None

    def _membership_changed(self) -> None:
        """Hook: membership replaced; drop state of departed endpoints."""
        return None

    @abstractmethod
    def _rebuild(self) -> None:
        """Hook: `_live` changed; rebuild whatever `pick` reads."""

    def _select_live(self, force: bool) -> bool:
        members = self._members
        total = 0
        available: list[Endpoint] = []
        available_weight = 0
        for endpoint in members:
            total += endpoint.weight
            if endpoint.available:
                available.append(endpoint)
                available_weight += endpoint.weight
        panic = bool(members) and available_weight < self._panic_threshold * total
        live = list(members) if panic else available
        changed = force or panic != self._panic or live != self._live
        self._panic = panic
        if changed:
            self._live = live
            self._live_weight = total if panic else available_weight
            self._rebuild()
        return changed

    def __repr__(self) -> str:
        mode = " panic" if self._panic else ""
        return (f"<{type(self).__name__} live={len(self._live)}/{len(self._members)}{mode}>")
