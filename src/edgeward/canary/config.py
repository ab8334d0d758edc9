"""`routes[].canary`: the YAML shape of a progressive canary (docs/canary.md).

Plain Python (the config loader reads these dataclasses' fields at run time). Each default is
a named constant with its precedent (Flagger, Argo Rollouts, Kayenta) beside the code that
uses it: controller.py (steps), judge.py (analysis), here (the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edgeward.canary.controller import (
    DEFAULT_MAX_WEIGHT,
    DEFAULT_STEP_INTERVAL,
    DEFAULT_STEP_WEIGHT,
    StepSettings,
    planned_looks,
)
from edgeward.canary.judge import (
    DEFAULT_MIN_ERROR_INCREASE,
    DEFAULT_MIN_LATENCY_DELTA,
    DEFAULT_MIN_LATENCY_INCREASE,
    DEFAULT_MIN_REQUESTS,
    DEFAULT_MIN_SAMPLES,
    JudgeSettings,
)
from edgeward.routing.config import WhenConfig
from edgeward.routing.keys import parse_key
from edgeward.values import Duration, doc

# The false-rollback budget of a whole rollout of identical versions: Kayenta's default
# confidence of 95 %. It is split evenly (Bonferroni) over the two tests and every look at
# the data, since judging a growing window four times a step and over several steps would
# otherwise multiply the false rollbacks (the "peeking" problem of sequential tests).
DEFAULT_ALPHA: Final = 0.05
# Durations kept per arm per window: 512 gives Mann-Whitney and p99 enough points at a fixed
# ~4 KiB per arm (Kayenta judges metric series of a few hundred points).
DEFAULT_SAMPLES: Final = 512
# Flagger's webhook timeout default is 10 s; a gate the gateway waits on should answer sooner.
DEFAULT_WEBHOOK_TIMEOUT: Final = 5.0
# Where fleet canaries keep their state: beside /edgeward/services/ and /edgeward/consumers/.
DEFAULT_FLEET_PREFIX: Final = "/edgeward/canary/"
# The leader's lease: Kubernetes leader election's leaseDuration is 15 s, etcd's
# concurrency.Session TTL 60 s; 10 s hands the decisions over within a few steps' ticks.
DEFAULT_FLEET_LEASE: Final = 10.0


@dataclass(frozen=True, kw_only=True)
class WebhookConfig:
    """An HTTP POST of the decision as JSON to a path of an upstream."""

    upstream: str = field(metadata=doc("the upstream (under `upstreams`) the POST goes to"))
    path: str = field(default="/", metadata=doc("request target of the POST"))
    timeout: Duration = field(
        default=DEFAULT_WEBHOOK_TIMEOUT,
        metadata=doc("longest wait for the answer (Flagger's webhook timeout is 10 s); then "
                     "it counts as failed"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.path.startswith("/"):
            problems.append(("path", f"must start with '/', got {self.path!r}"))
        if self.timeout <= 0:
            problems.append(("timeout", "must be above 0"))
        return problems


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    """`canary.fleet`: the canary's state in etcd, shared by every gateway (docs/canary.md)."""

    etcd_prefix: str = field(
        default=DEFAULT_FLEET_PREFIX,
        metadata=doc("etcd prefix of the fleet's canaries: ROUTE/state, ROUTE/leader and "
                     "ROUTE/members/ID go under it (top-level etcd: settings)"))
    lease_ttl: Duration = field(
        default=DEFAULT_FLEET_LEASE,
        metadata=doc("lease of the leader key and of each gateway's published counts; a "
                     "stopped leader's successor decides once it expires (Kubernetes leader "
                     "election: 15 s)"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        p = self.etcd_prefix
        if not p.startswith("/") or not p.endswith("/"):
            problems.append(("etcd_prefix", "must start and end with /"))
        if self.lease_ttl < 2:
            problems.append(("lease_ttl", "must be at least 2s (etcd leases count whole "
                                          "seconds)"))
        return problems


@dataclass(frozen=True, kw_only=True)
class AnalysisConfig:
    """How a window of the two arms is judged (canary/judge.py)."""

    alpha: float = field(
        default=DEFAULT_ALPHA,
        metadata=doc("false-rollback budget of one whole rollout of identical versions, split "
                     "evenly over the two tests and every look (each test of each look uses "
                     "alpha / (2 x looks); docs/canary.md)"))
    min_error_increase: float = field(
        default=DEFAULT_MIN_ERROR_INCREASE,
        metadata=doc("smallest rise of the error rate (absolute, 0.01 = one point) that rolls "
                     "back; Flagger's usual 99 % success-rate threshold"))
    min_latency_increase: float = field(
        default=DEFAULT_MIN_LATENCY_INCREASE,
        metadata=doc("smallest relative rise of the median duration (0.2 = 20 % slower) that "
                     "rolls back, with a significant Mann-Whitney U test (Kayenta)"))
    min_latency_delta: Duration = field(
        default=DEFAULT_MIN_LATENCY_DELTA,
        metadata=doc("and the medians must differ by at least this much: a 20 % rise of a "
                     "1 ms median is scheduling noise, not a regression"))
    min_samples: int = field(
        default=DEFAULT_MIN_SAMPLES,
        metadata=doc("sampled durations per arm before the latency test runs"))
    samples: int = field(
        default=DEFAULT_SAMPLES,
        metadata=doc("durations kept per arm per window (a bounded reservoir)"))
    max_error_rate: float | None = field(
        default=None,
        metadata=doc("absolute limit on the canary's error rate (Flagger thresholdRange); "
                     "null: none"))
    max_p99: Duration | None = field(
        default=None,
        metadata=doc("absolute limit on the canary's p99 duration; null: none"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not 0.0 < self.alpha < 0.5:
            problems.append(("alpha", f"must be between 0 and 0.5, got {self.alpha}"))
        for key in ("min_error_increase", "min_latency_increase", "min_latency_delta"):
            if getattr(self, key) < 0:
                problems.append((key, "must be 0 or more"))
        if self.min_samples < 2:
            problems.append(("min_samples", "must be at least 2"))
        if self.samples < self.min_samples:
            problems.append(("samples", f"must be at least min_samples ({self.min_samples})"))
        if self.max_error_rate is not None and not 0.0 <= self.max_error_rate <= 1.0:
            problems.append(("max_error_rate", "must be between 0 and 1"))
        if self.max_p99 is not None and self.max_p99 <= 0:
            problems.append(("max_p99", "must be above 0"))
        return problems


@dataclass(frozen=True, kw_only=True)
class CanaryConfig:
    """A route's progressive canary between two upstreams."""

    stable: str = field(metadata=doc("the upstream in production"))
    canary: str = field(metadata=doc("the upstream being rolled out"))
    step_weight: int = field(
        default=DEFAULT_STEP_WEIGHT,
        metadata=doc("percent of traffic added per passed step (Flagger stepWeight; Argo "
                     "setWeight steps)"))
    max_weight: int = field(
        default=DEFAULT_MAX_WEIGHT,
        metadata=doc("highest canary percent before promotion to 100 (Flagger maxWeight)"))
    step_interval: Duration = field(
        default=DEFAULT_STEP_INTERVAL,
        metadata=doc("time per step; a step passes only after it (Flagger analysis.interval)"))
    min_requests: int = field(
        default=DEFAULT_MIN_REQUESTS,
        metadata=doc("requests per arm in a step before it is judged; fewer: wait, never pass"))
    autostart: bool = field(
        default=True,
        metadata=doc("start progressing when the config loads; false: wait for POST "
                     "/canaries/start (or `edgeward canary start`)"))
    sticky_key: str | None = field(
        default=None,
        metadata=doc("key spec (e.g. header:x-user-id, cookie:uid) that keeps a user on one "
                     "arm; raising the weight only moves users to the canary. null: a draw "
                     "per request"))
    force_canary: WhenConfig | None = field(
        default=None,
        metadata=doc("requests that always go to the canary (header/cookie equals), e.g. "
                     "testers"))
    force_stable: WhenConfig | None = field(
        default=None, metadata=doc("requests that always go to the stable upstream"))
    analysis: AnalysisConfig = field(
        default_factory=AnalysisConfig, metadata=doc("how each step is judged"))
    pre_promotion: WebhookConfig | None = field(
        default=None,
        metadata=doc("POSTed before the promotion to 100 %; a non-2xx answer or a timeout "
                     "holds the canary at max_weight (Flagger confirm-promotion)"))
    post_rollback: WebhookConfig | None = field(
        default=None,
        metadata=doc("POSTed after a rollback or abort (Flagger rollback event webhook)"))
    fleet: FleetConfig | None = field(
        default=None,
        metadata=doc("keep the canary's state in etcd: every gateway applies the same weight "
                     "and one leader decides from the fleet's merged counts; null: each "
                     "worker runs its own canary"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.stable == self.canary:
            problems.append(("canary", f"must differ from stable ({self.stable!r})"))
        if not 1 <= self.step_weight <= 100:
            problems.append(("step_weight", f"must be 1..100, got {self.step_weight}"))
        if not 1 <= self.max_weight <= 100:
            problems.append(("max_weight", f"must be 1..100, got {self.max_weight}"))
        if self.step_interval <= 0:
            problems.append(("step_interval", "must be above 0"))
        if self.min_requests < 1:
            problems.append(("min_requests", "must be at least 1"))
        if self.sticky_key is not None:
            try:
                parse_key(self.sticky_key)
            except ValueError as exc:
                problems.append(("sticky_key", str(exc)))
        for key in ("force_canary", "force_stable"):
            when = getattr(self, key)
            if when is not None and when.percent_of is not None:
                problems.append((f"{key}.percent_of", "use sticky_key and the weight for a "
                                                      "share; overrides are header/cookie"))
        return problems

    def upstream_names(self) -> list[tuple[str, str]]:
        out = [("stable", self.stable), ("canary", self.canary)]
        for key in ("pre_promotion", "post_rollback"):
            hook = getattr(self, key)
            if hook is not None:
                out.append((f"{key}.upstream", hook.upstream))
        return out

    def steps(self) -> StepSettings:
        return StepSettings(step_weight=self.step_weight, max_weight=self.max_weight,
                            step_interval=self.step_interval)

    def judge_settings(self) -> JudgeSettings:
        a = self.analysis
        per_look = a.alpha / (2 * planned_looks(self.steps()))
        return JudgeSettings(alpha=per_look, min_requests=self.min_requests,
                             min_samples=a.min_samples, min_error_increase=a.min_error_increase,
                             min_latency_increase=a.min_latency_increase,
                             min_latency_delta=a.min_latency_delta,
                             max_error_rate=a.max_error_rate, max_p99=a.max_p99)
