"""Zone-aware routing (Envoy's zone_aware_lb) and label subsets over an upstream's endpoints.

Zone-aware routing, decided once per membership or availability change (`plan_zones`), so a
pick costs one or two random draws and a per-zone balancer pick:

  - expected share of a zone: its share of the upstream's total weight. Envoy compares with
    the *local cluster* (where the gateways run); a gateway does not know its fleet, so it
    assumes the fleet is spread over the zones like the upstream's capacity (documented in
    docs/locality.md; the usual deployment: one gateway set per zone, sized like the zone).
  - healthy share of a zone: its available weight over the upstream's available weight.
  - routing is off (plain balancing over every endpoint) when the gateway has no zone, no
    endpoint is in it, the local zone has no available endpoint, the upstream has fewer than
    `min_cluster_size` available endpoints, or the whole upstream is in panic.
  - healthy share >= expected share: every request stays in the local zone (Envoy's
    LocalityDirect).
  - otherwise a request stays local with probability healthy / expected, and the rest
    (Envoy's LocalityResidual) goes to the other zones in proportion to their residual
    capacity, healthy share - expected share, counting only zones where that is above 0.

Inside the chosen zone a balancer of the upstream's kind picks, with panic off (the plan only
sends to a zone that has available endpoints). `routing_enabled` (0..1) is the fraction of
requests that use the plan at all, as Envoy's `routing_enabled` runtime percentage.

Subsets (Envoy's subset_lb): `SubsetIndex.balancer(selector)` is a balancer over the endpoints
whose labels contain every (key, value) of the selector; built once per selector and rebuilt
on membership changes, so a request pays one dict lookup.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.factory import make_balancer
from edgeward.balance.options import BalancerOptions

# Envoy zone_aware_lb_config.min_cluster_size default: below 6 available endpoints, zone
# routing is off (a small upstream would flap between local and spill on every ejection).
DEFAULT_MIN_CLUSTER_SIZE: Final = 6
# Envoy zone_aware_lb_config.routing_enabled default: 100 % of requests use zone routing.
DEFAULT_ROUTING_ENABLED: Final = 1.0

Selector = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ZonePlan:
    """Where requests go: `local` is the probability of the local zone; the rest spills over
    `spill` zones, chosen by `cumulative` residual weights (same order)."""

    local: float
    spill: tuple[str, ...] = ()
    cumulative: tuple[float, ...] = ()


def plan_zones(local_zone: str, endpoints: Sequence[Endpoint], min_cluster_size: int,
               panic: bool) -> ZonePlan | None:
    """The zone plan for the current availability, or None when zone routing is off."""
    if not local_zone or panic:
        return None
    total: dict[str, int] = {}
    healthy: dict[str, int] = {}
    all_total = all_healthy = available_count = 0
    for e in endpoints:
        total[e.zone] = total.get(e.zone, 0) + e.weight
        all_total += e.weight
        if e.available:
            healthy[e.zone] = healthy.get(e.zone, 0) + e.weight
            all_healthy += e.weight
            available_count += 1
    local_healthy = healthy.get(local_zone, 0)
    if available_count < min_cluster_size or local_healthy == 0:
        return None
    expected_local = total[local_zone] / all_total
    have_local = local_healthy / all_healthy
    if have_local >= expected_local:
        return ZonePlan(1.0)
    spill: list[str] = []
    cumulative: list[float] = []
    running = 0.0
    for zone in sorted(healthy):
        if zone == local_zone:
            continue
        residual = healthy[zone] / all_healthy - total[zone] / all_total
        if residual > 0:
            running += residual
            spill.append(zone)
            cumulative.append(running)
    if not spill:
        return ZonePlan(1.0)
    return ZonePlan(have_local / expected_local, tuple(spill), tuple(cumulative))


class ZoneRouter:
    """Per-zone balancers and the current plan; `pick` falls back to `everything`."""

    __slots__ = ("local_zone", "min_cluster_size", "routing_enabled", "plan", "_options",
                 "_rng", "_zones", "_endpoints")

    def __init__(self, local_zone: str, options: BalancerOptions, rng: random.Random, *,
                 min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
                 routing_enabled: float = DEFAULT_ROUTING_ENABLED) -> None:
        self.local_zone = local_zone
        self.min_cluster_size = min_cluster_size
        self.routing_enabled = routing_enabled
        self.plan: ZonePlan | None = None
        self._options = replace(options, panic_threshold=0.0)
        self._rng = rng
        self._zones: dict[str, Balancer] = {}
        self._endpoints: tuple[Endpoint, ...] = ()

    def set_endpoints(self, endpoints: Sequence[Endpoint], panic: bool) -> None:
        self._endpoints = tuple(endpoints)
        groups: dict[str, list[Endpoint]] = {}
        for e in endpoints:
            groups.setdefault(e.zone, []).append(e)
        zones: dict[str, Balancer] = {}
        for zone, members in groups.items():
            b = self._zones.get(zone)
            if b is None:
                b = make_balancer(self._options, members, self._rng)
            else:
                b.set_endpoints(members)
            zones[zone] = b
        self._zones = zones
        self.plan = plan_zones(self.local_zone, endpoints, self.min_cluster_size, panic)

    def refresh(self, panic: bool) -> None:
        for b in self._zones.values():
            b.refresh()
        self.plan = plan_zones(self.local_zone, self._endpoints, self.min_cluster_size, panic)

    def choose_zone(self) -> str | None:
        """The zone for the next request, or None to balance over every endpoint."""
        plan = self.plan
        if plan is None:
            return None
        rng = self._rng
        if self.routing_enabled < 1.0 and rng.random() >= self.routing_enabled:
            return None
        if plan.local >= 1.0 or rng.random() < plan.local:
            return self.local_zone
        x = rng.random() * plan.cumulative[-1]
        return plan.spill[min(bisect.bisect_right(plan.cumulative, x), len(plan.spill) - 1)]

    def pick(self, hash_key: int | None, now: float, everything: Balancer) -> Endpoint | None:
        zone = self.choose_zone()
        if zone is not None:
            found = self._zones[zone].pick(hash_key, now)
            if found is not None:
                return found
        return everything.pick(hash_key, now)


def selector_of(labels: dict[str, str]) -> Selector:
    """A label mapping as a hashable, order-free selector."""
    return tuple(sorted(labels.items()))


def matches(endpoint: Endpoint, selector: Selector) -> bool:
    labels = endpoint.labels
    return all(labels.get(k) == v for k, v in selector)


class SubsetIndex:
    """One balancer per label selector in use, over the endpoints that match it."""

    __slots__ = ("_options", "_rng", "_subsets", "_endpoints")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        self._options = options
        self._rng = rng
        self._subsets: dict[Selector, Balancer] = {}
        self._endpoints: tuple[Endpoint, ...] = ()

    def balancer(self, selector: Selector) -> Balancer:
        found = self._subsets.get(selector)
        if found is None:
            found = make_balancer(self._options, self._members(selector), self._rng)
            self._subsets[selector] = found
        return found

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        self._endpoints = tuple(endpoints)
        for selector, b in self._subsets.items():
            b.set_endpoints(self._members(selector))

    def refresh(self) -> None:
        for b in self._subsets.values():
            b.refresh()

    def _members(self, selector: Selector) -> list[Endpoint]:
        return [e for e in self._endpoints if matches(e, selector)]
