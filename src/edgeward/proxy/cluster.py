"""A cluster at run time: the endpoints of one upstream, their pools, balancer and breaker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.factory import make_balancer
from edgeward.balance.hashing import hash64
from edgeward.balance.locality import Selector, SubsetIndex, ZoneRouter
from edgeward.config.schema import UpstreamConfig
from edgeward.http.h1.client import EndpointPool, TlsOrigin
from edgeward.http.h2.pool import H2Pool
from edgeward.http.message import RequestHead
from edgeward.http.stream import UpstreamPool
from edgeward.resilience.breaker import CircuitBreaker
from edgeward.resilience.outcome import Outcome
from edgeward.resilience.outlier import OutlierDetector
from edgeward.routing.keys import KeySpec, parse_key


class Cluster:
    __slots__ = (
        "name", "config", "endpoints", "pools", "balancer", "hash_key", "connect_timeout",
        "response_header_timeout", "_loop", "closed", "breaker", "endpoint_breakers",
        "rollout_ratio", "outlier", "active_requests", "active_retries", "events",
        "records_latency", "retries", "on_attempt", "pick_plain", "guarded", "tls", "zones",
        "subsets",
    )

    def __init__(
        self, name: str, config: UpstreamConfig, loop: asyncio.AbstractEventLoop,
        rng: random.Random | None = None, tls: TlsOrigin | None = None, zone: str = "",
    ) -> None:
        self.name = name
        self.tls = tls  # every connection of this cluster is TLS (None: every one is plain)
        self.config = config
        self.connect_timeout = config.connect_timeout
        self.response_header_timeout = config.response_header_timeout
        self.endpoints: list[Endpoint] = []
        self.pools: dict[Endpoint, UpstreamPool] = {}
        self._loop = loop
        self.closed = False
        options = config.balancer_options()
        rng = rng or random.Random()
        self.balancer: Balancer = make_balancer(options, [], rng)
        self.hash_key: KeySpec | None = parse_key(config.hash_on) if config.hash_on else None
        za = config.zone_aware
        # Zone-aware routing while the gateway has a zone and the upstream does not opt out.
        self.zones: ZoneRouter | None = (
            ZoneRouter(zone, options, rng, min_cluster_size=za.min_cluster_size,
                       routing_enabled=za.routing_enabled / 100.0)
            if zone and za.enabled else None)
        # Label subsets, built when a route first asks for a selector (docs/locality.md).
        self.subsets = SubsetIndex(options, rng)
        # Without a hash key, zones or subsets the exchange calls the balancer directly.
        self.pick_plain = (self.balancer.pick if self.hash_key is None and self.zones is None
                           else None)
        bc = config.circuit_breaker
        self.breaker = CircuitBreaker(bc) if bc is not None and not bc.per_endpoint else None
        self.endpoint_breakers: dict[str, CircuitBreaker] | None = (
            {} if bc is not None and bc.per_endpoint else None)
        self.outlier = OutlierDetector(config.outlier) if config.outlier is not None else None
        self.guarded = bc is not None  # has a circuit breaker to ask before each try
        # p99 / the stable arm's p99 while this upstream is a running canary's canary arm.
        self.rollout_ratio: float | None = None
        self.active_requests = 0
        self.active_retries = 0
        self.retries = 0  # retries started, all time (for metrics)
        # Telemetry's per-attempt hook: (cluster, endpoint, outcome, duration).
        self.on_attempt: Callable[[Cluster, Endpoint, Outcome, float], None] | None = None
        # Breaker transitions and outlier ejections, drained by the telemetry shell.
        self.events: list[object] = []
        self.records_latency = config.balance == "peak_ewma"
        static = [
            Endpoint(host, port, config.weights.get(f"{host}:{port}", 1),
                     config.zones.get(f"{host}:{port}", ""),
                     dict(config.labels.get(f"{host}:{port}", {})))
            for host, port in config.targets
        ]
        if static:
            self.set_endpoints(static)

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Adopt a new membership; endpoints (and their pools) that stay keep their state."""
        keep = {e.key: e for e in self.endpoints}
        fresh: list[Endpoint] = []
        for e in endpoints:
            old = keep.pop(e.key, None)
            if old is not None:
                old.weight = e.weight
                old.zone = e.zone
                old.labels = e.labels
                fresh.append(old)
            else:
                fresh.append(e)
                self.pools[e] = self._pool(e)
        for gone in keep.values():
            pool = self.pools.pop(gone, None)
            if pool is not None:
                pool.close_all()
        self.endpoints = fresh
        self.balancer.set_endpoints(fresh)
        self.subsets.set_endpoints(fresh)
        if self.zones is not None:
            self.zones.set_endpoints(fresh, self.balancer.panicking)
        if self.outlier is not None:
            self.outlier.set_endpoints(fresh, self._loop.time())
        if self.endpoint_breakers is not None:
            bc = self.config.circuit_breaker
            assert bc is not None
            self.endpoint_breakers = {
                e.key: self.endpoint_breakers.get(e.key) or CircuitBreaker(bc) for e in fresh}
            for breaker in self.endpoint_breakers.values():
                breaker.set_latency_ratio(self.rollout_ratio)

    def set_rollout_ratio(self, ratio: float | None) -> None:
        """A canary's latency against its stable arm (None: no rollout), for breakers with a
        `rollout_failure_rate` (resilience/breaker.py `rollout_threshold`)."""
        self.rollout_ratio = ratio
        if self.breaker is not None:
            self.breaker.set_latency_ratio(ratio)
        for breaker in (self.endpoint_breakers or {}).values():
            breaker.set_latency_ratio(ratio)

    def _pool(self, endpoint: Endpoint) -> UpstreamPool:
        config = self.config
        if config.protocol == "h2":
            return H2Pool(endpoint, idle_timeout=config.idle_timeout, loop=self._loop,
                          tls=self.tls)
        return EndpointPool(endpoint, max_idle=config.max_idle,
                            idle_timeout=config.idle_timeout, loop=self._loop, tls=self.tls)

    def pick(self, head: RequestHead, route_name: str, now: float) -> Endpoint | None:
        spec = self.hash_key
        hashed: int | None = None
        if spec is not None:
            key = spec.extract(head, route_name)
            hashed = hash64(key) if key is not None else None
        if self.zones is not None:
            return self.zones.pick(hashed, now, self.balancer)
        return self.balancer.pick(hashed, now)

    def pick_subsets(self, head: RequestHead, route_name: str, now: float,
                     chain: tuple[Selector | None, ...]) -> Endpoint | None:
        """Pick in the first label subset of `chain` with an endpoint to pick (None in the
        chain: the whole upstream); None when none has one."""
        spec = self.hash_key
        hashed: int | None = None
        if spec is not None:
            key = spec.extract(head, route_name)
            hashed = hash64(key) if key is not None else None
        for selector in chain:
            if selector is None:
                found = (self.zones.pick(hashed, now, self.balancer) if self.zones is not None
                         else self.balancer.pick(hashed, now))
            else:
                found = self.subsets.balancer(selector).pick(hashed, now)
            if found is not None:
                return found
        return None

    def admit(self, endpoint: Endpoint | None, now: float) -> bool:
        """Circuit breaker admission (per upstream, or per endpoint when configured)."""
        if self.breaker is not None:
            return self.breaker.admit(now)
        if self.endpoint_breakers is not None and endpoint is not None:
            return self.endpoint_breakers[endpoint.key].admit(now)
        return True

    def breaker_for(self, endpoint: Endpoint | None) -> CircuitBreaker | None:
        if self.breaker is not None:
            return self.breaker
        if self.endpoint_breakers is not None and endpoint is not None:
            return self.endpoint_breakers.get(endpoint.key)
        return None

    def record(self, endpoint: Endpoint, outcome: Outcome, duration: float, now: float) -> None:
        """Feed one attempt's outcome to the breaker, outlier detection and balancer."""
        hook = self.on_attempt
        if hook is not None:
            hook(self, endpoint, outcome, duration)
        breaker = self.breaker_for(endpoint)
        if breaker is not None:
            transition = breaker.record(outcome, duration, now)
            if transition is not None:
                self.events.append(transition)
        if self.outlier is not None:
            events = self.outlier.record(endpoint, outcome, now)
            if events:
                self.events.extend(events)
                self.availability_changed()
        if self.records_latency:
            self.balancer.record(endpoint, duration, now)

    def release(self, endpoint: Endpoint | None, now: float, duration: float) -> None:
        """An admitted attempt ended without an outcome (client left): free its permit."""
        breaker = self.breaker_for(endpoint)
        if breaker is not None:
            breaker.release(now, duration)

    def availability_changed(self) -> None:
        self.balancer.refresh()
        self.subsets.refresh()
        if self.zones is not None:
            self.zones.refresh(self.balancer.panicking)

    def sweep(self, now: float) -> None:
        for pool in self.pools.values():
            pool.sweep(now)
        if self.outlier is not None:
            events = self.outlier.tick(now)
            if events:
                self.events.extend(events)
                self.availability_changed()
        # Transitions caused by time alone (open -> half-open, a probe timing out).
        breakers = [self.breaker] if self.breaker is not None else list(
            (self.endpoint_breakers or {}).values())
        for breaker in breakers:
            breaker.state(now)
            self.events.extend(breaker.drain())
        del self.events[:-256]  # bounded when nobody drains them

    def close(self) -> None:
        self.closed = True
        for pool in self.pools.values():
            pool.close_all()

    def __repr__(self) -> str:
        return f"<Cluster {self.name} endpoints={len(self.endpoints)}>"
