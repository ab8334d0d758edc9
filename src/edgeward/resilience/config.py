"""The circuit breaker's YAML settings (`circuit_breaker:` on an upstream).

Kept apart from the breaker itself, which is compiled with mypyc: the config loader reads the
fields, metadata and type hints of this dataclass at run time, so it stays plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.resilience.outcome import FLAG_BY_NAME
from edgeward.values import Duration, doc

FailureKind = Literal["5xx", "connect_failure", "timeout", "reset"]

# --- defaults, each with its precedent --------------------------------------------------------
# Hystrix errorThresholdPercentage=50 and resilience4j failureRateThreshold=50%.
DEFAULT_FAILURE_RATE: Final = 0.5
# resilience4j slowCallRateThreshold=100%: only "every call is slow" trips it by default.
DEFAULT_SLOW_CALL_RATE: Final = 1.0
# resilience4j slowCallDurationThreshold=60s: longer than any sane route timeout, so a call
# counts as slow only when a user sets this below their route timeout.
DEFAULT_SLOW_CALL: Final = 60.0
# Hystrix requestVolumeThreshold=20 in its 10 s window (resilience4j's 100 is for 60 s windows);
# fewer calls make a rate of 50% too noisy to act on.
DEFAULT_MIN_REQUESTS: Final = 20
# Hystrix metrics.rollingStats.timeInMilliseconds=10000 and numBuckets=10.
DEFAULT_WINDOW: Final = 10.0
DEFAULT_BUCKETS: Final = 10
# Hystrix sleepWindowInMilliseconds=5000; Finagle FailureAccrual also starts its backoff at 5 s.
DEFAULT_OPEN_FOR: Final = 5.0
# Finagle FailureAccrual caps at 300 s; at the edge a healed upstream should be back in traffic
# within a minute, so we cap at 60 s.
DEFAULT_OPEN_FOR_MAX: Final = 60.0
# Doubling, as Envoy's retry back-off and Finagle's exponential backoff (5, 10, 20, 40, 60 s).
DEFAULT_OPEN_FOR_MULTIPLIER: Final = 2.0
# Hystrix/Sentinel/Polly probe with 1 call (one lucky success closes); resilience4j with 10
# (slow to close at low traffic). 3 needs a short run of successes yet closes in a few calls.
DEFAULT_HALF_OPEN_REQUESTS: Final = 3
# Envoy's default route timeout is 15 s: a probe still unfinished then has outlived any request
# the shell would still be waiting on. resilience4j's default (0 = wait forever) is what made
# half-open stick (resilience4j #903).
DEFAULT_HALF_OPEN_TIMEOUT: Final = 15.0
# Everything that says "the upstream is in trouble": Envoy counts 5xx and local-origin errors.
DEFAULT_FAILURE_ON: Final[tuple[FailureKind, ...]] = ("5xx", "connect_failure", "timeout", "reset")
# Hystrix and resilience4j keep one breaker per command/name, i.e. per upstream; per-endpoint
# breaking overlaps with outlier ejection, so it is opt-in.
DEFAULT_PER_ENDPOINT: Final = False
# The rollout rule's two figures: a canary as fast as its stable arm is held to 3 % + 2 % = 5 %
# failures (a tenth of the 50 % that opens a breaker for good: a canary earns no benefit of the
# doubt), and the threshold falls towards 3 % as the canary's p99 grows past the stable arm's.
DEFAULT_ROLLOUT_BASE: Final = 0.03
DEFAULT_ROLLOUT_SPAN: Final = 0.02


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutThreshold:
    """YAML `circuit_breaker.rollout_failure_rate:`: the latency-relative failure threshold that
    applies while this upstream is the canary arm of a running canary."""

    base: float = field(
        default=DEFAULT_ROLLOUT_BASE,
        metadata=doc("the failure rate that opens the breaker however slow the canary is"),
    )
    span: float = field(
        default=DEFAULT_ROLLOUT_SPAN,
        metadata=doc("added to base, scaled by stable p99 / canary p99 (at most 1)"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not 0.0 < self.base <= 1.0:
            problems.append(("base", f"must be in (0, 1], got {self.base}"))
        if not 0.0 <= self.span <= 1.0 - min(self.base, 1.0):
            problems.append(("span", f"must be in [0, 1 - base], got {self.span}"))
        return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """YAML `circuit_breaker:` on an upstream."""

    failure_rate: float | None = field(
        default=DEFAULT_FAILURE_RATE,
        metadata=doc("fraction of failed calls (0-1] that opens the breaker; null = off"),
    )
    slow_call_rate: float | None = field(
        default=DEFAULT_SLOW_CALL_RATE,
        metadata=doc("fraction of slow calls (0-1] that opens the breaker; null = off"),
    )
    slow_call: Duration = field(
        default=DEFAULT_SLOW_CALL, metadata=doc("a call at least this long counts as slow")
    )
    min_requests: int = field(
        default=DEFAULT_MIN_REQUESTS,
        metadata=doc("calls in the window before rates are judged"),
    )
    window: Duration = field(default=DEFAULT_WINDOW, metadata=doc("span of the sliding window"))
    buckets: int = field(default=DEFAULT_BUCKETS, metadata=doc("ring buckets in the window"))
    open_for: Duration = field(
        default=DEFAULT_OPEN_FOR, metadata=doc("time open before the first probe")
    )
    open_for_max: Duration = field(
        default=DEFAULT_OPEN_FOR_MAX, metadata=doc("cap of the growing open time")
    )
    open_for_multiplier: float = field(
        default=DEFAULT_OPEN_FOR_MULTIPLIER,
        metadata=doc("open time factor per consecutive opening (1 = constant)"),
    )
    half_open_requests: int = field(
        default=DEFAULT_HALF_OPEN_REQUESTS,
        metadata=doc("probes admitted while half-open; all must succeed to close"),
    )
    half_open_timeout: Duration = field(
        default=DEFAULT_HALF_OPEN_TIMEOUT,
        metadata=doc("a probe unfinished this long after admission counts as failed"),
    )
    failure_on: list[FailureKind] = field(
        default_factory=lambda: list(DEFAULT_FAILURE_ON),
        metadata=doc("what counts as a failure: 5xx, connect_failure, timeout, reset"),
    )
    per_endpoint: bool = field(
        default=DEFAULT_PER_ENDPOINT,
        metadata=doc("one breaker per endpoint instead of one per upstream"),
    )
    rollout_failure_rate: RolloutThreshold | None = field(
        default=None,
        metadata=doc("while this upstream is a running canary's canary arm, the failure rate "
                     "that opens the breaker is base + span x min(1, stable p99 / canary p99), "
                     "so a slower canary trips sooner; null = failure_rate throughout"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in ("failure_rate", "slow_call_rate"):
            value = getattr(self, key)
            if value is not None and not 0.0 < value <= 1.0:
                problems.append((key, f"must be in (0, 1], got {value}"))
        if self.failure_rate is None and self.slow_call_rate is None:
            problems.append(("failure_rate", "failure_rate and slow_call_rate cannot both be null"))
        for key in ("slow_call", "window", "open_for", "half_open_timeout"):
            value = getattr(self, key)
            if not value > 0:
                problems.append((key, f"must be > 0, got {value}"))
        for key in ("min_requests", "buckets", "half_open_requests"):
            value = getattr(self, key)
            if value < 1:
                problems.append((key, f"must be >= 1, got {value}"))
        if self.open_for_max < self.open_for:
            problems.append(
                ("open_for_max", f"must be >= open_for ({self.open_for}), got {self.open_for_max}")
            )
        if not self.open_for_multiplier >= 1.0:
            problems.append(
                ("open_for_multiplier", f"must be >= 1, got {self.open_for_multiplier}")
            )
        for i, name in enumerate(self.failure_on):
            if name not in FLAG_BY_NAME or name in ("502", "503", "504"):
                problems.append((f"failure_on[{i}]", f"unknown failure kind {name!r}"))
            elif name in self.failure_on[:i]:
                problems.append((f"failure_on[{i}]", f"{name!r} is listed twice"))
        return problems
