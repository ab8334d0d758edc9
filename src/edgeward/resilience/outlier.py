"""Outlier detection: take misbehaving endpoints out of the balancer's rotation for a while.

Sans-I/O, after Envoy's outlier detector. The shell calls:

    set_endpoints(endpoints)        when discovery changes the cluster (state kept per address)
    record(endpoint, outcome, now)  after every upstream attempt (consecutive-failure rules)
    tick(now)                       at least once per `interval` (statistical rules, un-ejection)

Each returns the events it caused (`OutlierEvent` values, usually none: a shared empty tuple)
and sets `Endpoint.ejected`, which balancers already honour through `Endpoint.available`.

Rules:
- consecutive_5xx: that many 5xx/transport errors in a row eject (Envoy's default rule).
- consecutive_gateway_failure: that many 502/503/504/transport errors in a row eject.
- success rate (per interval): among endpoints with >= success_rate_request_volume calls, if
  there are >= success_rate_minimum_hosts of them, eject those whose success rate is below
  mean - success_rate_stdev_factor * stdev (population stdev), worst first.
- failure percentage (per interval): among endpoints with >= failure_percentage_request_volume
  calls, if there are >= failure_percentage_minimum_hosts of them, eject those whose failure
  percentage is >= failure_percentage_threshold, worst first.
- ejection time = base_ejection_time * times ejected, capped at max_ejection_time (or at
  base_ejection_time if that is larger); each interval an endpoint spends un-ejected lowers its
  count by one, so a host that recovered for good starts over at the base time (as Envoy).

The cap, exactly: at most floor(n * max_ejection_percent / 100) of n endpoints are ejected at
any moment (Envoy >= 1.27; before that it always allowed one, which ejected the only host of
small clusters, envoy#3263/#26877). With `always_eject_one: true` one ejection is allowed even
when the floor is 0 (Envoy's later `always_eject_one_host`). In every case an ejection never
leaves the cluster without an available endpoint: the last available host is never ejected.
When `set_endpoints` shrinks the cluster below what the cap allows, the ejections that would end
soonest are lifted early, so the cap holds at every moment, not only at ejection time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.balance.endpoint import Endpoint
from edgeward.resilience.outcome import Outcome
from edgeward.values import Duration, doc

EjectReason = Literal[
    "consecutive_5xx", "consecutive_gateway_failure", "success_rate", "failure_percentage"
]
EventKind = Literal["ejected", "unejected", "ejection_skipped"]
UnejectReason = Literal["ejection_time_elapsed", "cluster_shrunk"]

# --- defaults, each with its precedent (Envoy's OutlierDetection proto) -------------------------
DEFAULT_CONSECUTIVE_5XX: Final = 5                  # Envoy consecutive_5xx
# Envoy counts gateway failures (default 5) but enforces them 0 % of the time: off unless set.
DEFAULT_CONSECUTIVE_GATEWAY_FAILURE: Final[int | None] = None
DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS: Final = 5       # Envoy success_rate_minimum_hosts
DEFAULT_SUCCESS_RATE_REQUEST_VOLUME: Final = 100    # Envoy success_rate_request_volume
DEFAULT_SUCCESS_RATE_STDEV_FACTOR: Final = 1.9      # Envoy success_rate_stdev_factor 1900/1000
# Envoy's threshold is 85 % but enforcing_failure_percentage defaults to 0: off unless set.
DEFAULT_FAILURE_PERCENTAGE_THRESHOLD: Final[float | None] = None
DEFAULT_FAILURE_PERCENTAGE_MINIMUM_HOSTS: Final = 5     # Envoy failure_percentage_minimum_hosts
DEFAULT_FAILURE_PERCENTAGE_REQUEST_VOLUME: Final = 50   # Envoy failure_percentage_request_volume
DEFAULT_INTERVAL: Final = 10.0                      # Envoy interval 10 s
DEFAULT_BASE_EJECTION_TIME: Final = 30.0            # Envoy base_ejection_time 30 s
DEFAULT_MAX_EJECTION_TIME: Final = 300.0            # Envoy max_ejection_time 300 s
DEFAULT_MAX_EJECTION_PERCENT: Final = 10            # Envoy max_ejection_percent 10 %
# Envoy >= 1.27 enforces the percentage exactly (no free first ejection) unless
# always_eject_one_host is set; we follow that.
DEFAULT_ALWAYS_EJECT_ONE: Final = False

_NO_EVENTS: Final[tuple[OutlierEvent, ...]] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class OutlierConfig:
    """YAML `outlier:` on an upstream."""

    consecutive_5xx: int | None = field(
        default=DEFAULT_CONSECUTIVE_5XX,
        metadata=doc("5xx or transport errors in a row that eject; null = off"),
    )
    consecutive_gateway_failure: int | None = field(
        default=DEFAULT_CONSECUTIVE_GATEWAY_FAILURE,
        metadata=doc("502/503/504 or transport errors in a row that eject; null = off"),
    )
    success_rate_minimum_hosts: int = field(
        default=DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS,
        metadata=doc("endpoints with enough volume needed to judge success rates"),
    )
    success_rate_request_volume: int = field(
        default=DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
        metadata=doc("calls in an interval for an endpoint to be judged by success rate"),
    )
    success_rate_stdev_factor: float | None = field(
        default=DEFAULT_SUCCESS_RATE_STDEV_FACTOR,
        metadata=doc("eject below mean - factor * stdev; null = success-rate rule off"),
    )
    failure_percentage_threshold: float | None = field(
        default=DEFAULT_FAILURE_PERCENTAGE_THRESHOLD,
        metadata=doc("eject at or above this failure % (0-100); null = off"),
    )
    failure_percentage_minimum_hosts: int = field(
        default=DEFAULT_FAILURE_PERCENTAGE_MINIMUM_HOSTS,
        metadata=doc("endpoints with enough volume needed to judge failure percentages"),
    )
    failure_percentage_request_volume: int = field(
        default=DEFAULT_FAILURE_PERCENTAGE_REQUEST_VOLUME,
        metadata=doc("calls in an interval for an endpoint to be judged by failure %"),
    )
    interval: Duration = field(default=DEFAULT_INTERVAL, metadata=doc("evaluation period"))
    base_ejection_time: Duration = field(
        default=DEFAULT_BASE_EJECTION_TIME, metadata=doc("first ejection's length")
    )
    max_ejection_time: Duration = field(
        default=DEFAULT_MAX_EJECTION_TIME, metadata=doc("cap of the growing ejection length")
    )
    max_ejection_percent: int = field(
        default=DEFAULT_MAX_EJECTION_PERCENT,
        metadata=doc("at most floor(n * this / 100) endpoints ejected at once"),
    )
    always_eject_one: bool = field(
        default=DEFAULT_ALWAYS_EJECT_ONE,
        metadata=doc("allow one ejection even when the percentage floors to 0"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in ("consecutive_5xx", "consecutive_gateway_failure"):
            value = getattr(self, key)
            if value is not None and value < 1:
                problems.append((key, f"must be >= 1 or null, got {value}"))
        for key in (
            "success_rate_minimum_hosts", "success_rate_request_volume",
            "failure_percentage_minimum_hosts", "failure_percentage_request_volume",
        ):
            value = getattr(self, key)
            if value < 1:
                problems.append((key, f"must be >= 1, got {value}"))
        factor = self.success_rate_stdev_factor
        if factor is not None and not factor > 0:
            problems.append(("success_rate_stdev_factor", f"must be > 0 or null, got {factor}"))
        pct = self.failure_percentage_threshold
        if pct is not None and not 0 < pct <= 100:
            problems.append(("failure_percentage_threshold", f"must be in (0, 100], got {pct}"))
        for key in ("interval", "base_ejection_time", "max_ejection_time"):
            value = getattr(self, key)
            if not value > 0:
                problems.append((key, f"must be > 0, got {value}"))
        if not 0 <= self.max_ejection_percent <= 100:
            problems.append(
                ("max_ejection_percent", f"must be 0-100, got {self.max_ejection_percent}")
            )
        return problems


@dataclass(frozen=True, slots=True)
class OutlierEvent:
    """An ejection, an un-ejection, or an ejection the cap refused (Envoy's ejections_overflow)."""

    kind: EventKind
    endpoint: Endpoint
    reason: EjectReason | UnejectReason
    at: float
    until: float | None = None  # for "ejected": when the ejection ends


class _Host:
    __slots__ = (
        "endpoint", "consecutive_5xx", "consecutive_gateway", "calls", "failures",
        "ejected_until", "times_ejected", "moved",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.calls = 0              # in the current interval
        self.failures = 0           # in the current interval
        self.ejected_until: float | None = None
        self.times_ejected = 0      # ejection-time multiplier; decays while healthy
        self.moved = False          # ejected or un-ejected during the current interval


def ejection_time(cfg: OutlierConfig, times_ejected: int) -> float:
    """Length of an ejection that is the endpoint's `times_ejected`-th (>= 1) in a row."""
    cap = max(cfg.base_ejection_time, cfg.max_ejection_time)
    return min(cfg.base_ejection_time * max(times_ejected, 1), cap)


def ejection_cap(cfg: OutlierConfig, n: int) -> int:
    """How many of n endpoints may be ejected at once (never all of them)."""
    limit = n * cfg.max_ejection_percent // 100
    if cfg.always_eject_one:
        limit = max(limit, 1)
    return max(0, min(limit, n - 1))


class OutlierDetector:
    """Per-cluster outlier detection. Not thread-safe; one per worker event loop."""

    __slots__ = ("cfg", "_hosts", "_ejected", "_next_eval", "_c5xx", "_cgw")

    def __init__(self, cfg: OutlierConfig | None = None) -> None:
        cfg = cfg if cfg is not None else OutlierConfig()
        problems = cfg.check()
        if problems:
            raise ValueError("; ".join(f"outlier.{k}: {r}" for k, r in problems))
        self.cfg = cfg
        self._hosts: dict[str, _Host] = {}
        self._ejected = 0
        self._next_eval: float | None = None
        # Off thresholds become unreachable so `record` tests no None.
        self._c5xx = cfg.consecutive_5xx if cfg.consecutive_5xx is not None else math.inf
        gw = cfg.consecutive_gateway_failure
        self._cgw = gw if gw is not None else math.inf

    # --- cluster membership ---------------------------------------------------------------------

    def set_endpoints(self, endpoints: Iterable[Endpoint], now: float = 0.0) -> list[OutlierEvent]:
        """Adopt the cluster's endpoints; an address kept keeps its counters and ejection.

        If the cluster shrank below what the current ejections fit in, the ones ending soonest
        are lifted (events stamped `now`).
        """
        old = self._hosts
        hosts: dict[str, _Host] = {}
        for ep in endpoints:
            host = old.get(ep.key)
            if host is None:
                host = _Host(ep)
            elif host.endpoint is not ep:
                host.endpoint = ep
            ep.ejected = host.ejected_until is not None
            hosts[ep.key] = host
        self._hosts = hosts
        ejected = [h for h in hosts.values() if h.ejected_until is not None]
        self._ejected = len(ejected)
        events: list[OutlierEvent] = []
        excess = self._ejected - ejection_cap(self.cfg, len(hosts))
        if excess > 0:
            ejected.sort(key=lambda h: h.ejected_until or 0.0)
            for host in ejected[:excess]:
                events.append(self._uneject(host, now, "cluster_shrunk"))
        return events

    # --- per attempt ----------------------------------------------------------------------------

    def record(self, endpoint: Endpoint, outcome: Outcome, now: float) -> Sequence[OutlierEvent]:
        host = self._hosts.get(endpoint.key)
        if host is None:
            return _NO_EVENTS  # the endpoint left the cluster while the request was in flight
        host.calls += 1
        if not outcome.failed:
            host.consecutive_5xx = 0
            host.consecutive_gateway = 0
            return _NO_EVENTS
        host.failures += 1
        host.consecutive_5xx += 1
        if outcome.gateway_failure:
            host.consecutive_gateway += 1
        else:
            host.consecutive_gateway = 0
        if host.ejected_until is not None:
            return _NO_EVENTS
        if host.consecutive_5xx >= self._c5xx:
            return (self._try_eject(host, now, "consecutive_5xx"),)
        if host.consecutive_gateway >= self._cgw:
            return (self._try_eject(host, now, "consecutive_gateway_failure"),)
        return _NO_EVENTS

    # --- periodic -------------------------------------------------------------------------------

    def tick(self, now: float) -> list[OutlierEvent]:
        """Un-eject hosts whose time is up; once per `interval`, apply the statistical rules."""
        events: list[OutlierEvent] = []
        if self._ejected:
            for host in self._hosts.values():
                until = host.ejected_until
                if until is not None and now >= until:
                    events.append(self._uneject(host, now, "ejection_time_elapsed"))
        if self._next_eval is None:
            self._next_eval = now + self.cfg.interval
        elif now >= self._next_eval:
            self._next_eval = now + self.cfg.interval
            self._evaluate(now, events)
        return events

    def ejected(self) -> list[Endpoint]:
        return [h.endpoint for h in self._hosts.values() if h.ejected_until is not None]

    def __repr__(self) -> str:
        return f"<OutlierDetector hosts={len(self._hosts)} ejected={self._ejected}>"

    # --- internals ------------------------------------------------------------------------------

    def _evaluate(self, now: float, events: list[OutlierEvent]) -> None:
        cfg = self.cfg
        hosts = list(self._hosts.values())
        if cfg.success_rate_stdev_factor is not None:
            judged = [
                h for h in hosts
                if h.ejected_until is None and h.calls >= cfg.success_rate_request_volume
            ]
            if judged and len(judged) >= cfg.success_rate_minimum_hosts:
                rates = [1.0 - h.failures / h.calls for h in judged]
                mean = sum(rates) / len(rates)
                stdev = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))
                floor = mean - cfg.success_rate_stdev_factor * stdev
                worst = sorted(
                    (r, i) for i, r in enumerate(rates) if r < floor
                )
                for _, i in worst:
                    events.append(self._try_eject(judged[i], now, "success_rate"))
        if cfg.failure_percentage_threshold is not None:
            judged = [
                h for h in hosts
                if h.ejected_until is None and h.calls >= cfg.failure_percentage_request_volume
            ]
            if judged and len(judged) >= cfg.failure_percentage_minimum_hosts:
                pcts = [100.0 * h.failures / h.calls for h in judged]
                worst = sorted(
                    ((-p, i) for i, p in enumerate(pcts) if p >= cfg.failure_percentage_threshold),
                )
                for _, i in worst:
                    events.append(self._try_eject(judged[i], now, "failure_percentage"))
        for host in hosts:
            host.calls = host.failures = 0
            # A whole interval in rotation without trouble lowers the next ejection's length.
            if host.ejected_until is None and host.times_ejected > 0 and not host.moved:
                host.times_ejected -= 1
            host.moved = False

    def _try_eject(self, host: _Host, now: float, reason: EjectReason) -> OutlierEvent:
        ep = host.endpoint
        # Counters restart either way, so a capped host costs an event per N failures, not each.
        host.consecutive_5xx = host.consecutive_gateway = 0
        if self._ejected >= ejection_cap(self.cfg, len(self._hosts)) or not any(
            h.endpoint.available for h in self._hosts.values() if h is not host
        ):
            return OutlierEvent("ejection_skipped", ep, reason, now)
        host.times_ejected += 1
        until = now + ejection_time(self.cfg, host.times_ejected)
        host.ejected_until = until
        host.moved = True
        ep.ejected = True
        self._ejected += 1
        return OutlierEvent("ejected", ep, reason, now, until)

    def _uneject(self, host: _Host, now: float, reason: UnejectReason) -> OutlierEvent:
        host.ejected_until = None
        host.moved = True
        host.consecutive_5xx = host.consecutive_gateway = 0
        host.endpoint.ejected = False
        self._ejected -= 1
        return OutlierEvent("unejected", host.endpoint, reason, now)
