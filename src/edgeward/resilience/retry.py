"""Retry policy and retry budget: retry only where it is safe, never into a retry storm.

Sans-I/O. `RetryPolicy.should_retry` decides whether the attempt that just ended may be tried
again; `RetryPolicy.backoff` says how long to wait first (full jitter, drawn from an injected
`random.Random`); `RetryBudget.try_acquire` caps retries in flight to a share of the requests in
flight (Envoy's retry budget), so when an upstream is down retries add at most `percent` load.

`attempts` counts tries including the first (like gRPC's maxAttempts and nginx's
proxy_next_upstream_tries): `attempts: 3` is one try and up to two retries; `attempts: 1` turns
retries off.

Safety rules, in order:
  1. no more than `attempts` tries;
  2. the request body must still be at hand (`body_replayable`): the shell buffered it and it
     was at most `replay_body_limit` bytes (see `RetryPolicy.can_replay`);
  3. the outcome is one listed in `on`;
  4. the method is idempotent (RFC 9110 9.2.2: GET HEAD OPTIONS TRACE PUT DELETE), or
     `retry_non_idempotent` is set, or the outcome is `connect_failure` (the request never
     reached the upstream, so nothing can have happened twice; nginx reasons the same way).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.resilience.outcome import F_CONNECT_FAILURE, Outcome, mask_of
from edgeward.values import Duration, Size, doc

RetryOn = Literal["connect_failure", "reset", "timeout", "5xx", "502", "503", "504"]
GrpcRetryOn = Literal["cancelled", "deadline_exceeded", "internal", "resource_exhausted",
                      "unavailable"]
# gRPC status numbers of the GrpcRetryOn names (edgeward.grpc.status has them all; the core
# imports nothing from the shell).
GRPC_CODES: Final[dict[str, int]] = {
    "cancelled": 1, "deadline_exceeded": 4, "internal": 13, "resource_exhausted": 8,
    "unavailable": 14,
}

# --- defaults, each with its precedent -----------------------------------------------------------
# Envoy's default num_retries is 1, i.e. two tries in total.
DEFAULT_ATTEMPTS: Final = 2
# nginx proxy_next_upstream default "error timeout": transport errors and timeouts only; a 5xx
# is an answer from the upstream and is not retried unless asked for.
DEFAULT_ON: Final[tuple[RetryOn, ...]] = ("connect_failure", "reset", "timeout")
# Envoy: no per-try timeout unless set; the route's timeout bounds all tries together.
DEFAULT_PER_TRY_TIMEOUT: Final[float | None] = None
# Envoy retry back-off: base_interval 25 ms, max_interval 10 x base = 250 ms.
DEFAULT_BACKOFF_BASE: Final = 0.025
DEFAULT_BACKOFF_MAX: Final = 0.250
# nginx and Envoy never repeat a non-idempotent request that reached the upstream by default.
DEFAULT_RETRY_NON_IDEMPOTENT: Final = False
# Between nginx's client_body_buffer_size (16 KiB) and Envoy's 1 MiB buffer limit: JSON API
# bodies fit; uploads stream through unbuffered and are not retried.
DEFAULT_REPLAY_BODY_LIMIT: Final = 64 * 1024
# Envoy retry budget defaults: budget_percent 20 %, min_retry_concurrency 3.
DEFAULT_BUDGET_PERCENT: Final = 20.0
DEFAULT_BUDGET_MIN_CONCURRENCY: Final = 3

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_MAX_DOUBLINGS: Final = 62  # beyond this base * 2**n exceeds any max; avoids float overflow


@dataclass(frozen=True, kw_only=True, slots=True)
class BackoffConfig:
    """YAML `retries.backoff:`."""

    base: Duration = field(default=DEFAULT_BACKOFF_BASE, metadata=doc("first retry's ceiling"))
    max: Duration = field(default=DEFAULT_BACKOFF_MAX, metadata=doc("ceiling of any wait"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.base > 0:
            problems.append(("base", f"must be > 0, got {self.base}"))
        if self.max < self.base:
            problems.append(("max", f"must be >= base ({self.base}), got {self.max}"))
        return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetConfig:
    """YAML `retries.budget:`."""

    percent: float = field(
        default=DEFAULT_BUDGET_PERCENT,
        metadata=doc("retries in flight allowed as a % of requests in flight"),
    )
    min_concurrency: int = field(
        default=DEFAULT_BUDGET_MIN_CONCURRENCY,
        metadata=doc("retries in flight always allowed, whatever the traffic"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not 0 <= self.percent <= 100:
            problems.append(("percent", f"must be 0-100, got {self.percent}"))
        if self.min_concurrency < 0:
            problems.append(("min_concurrency", f"must be >= 0, got {self.min_concurrency}"))
        return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryConfig:
    """YAML `retries:` on a route."""

    attempts: int = field(
        default=DEFAULT_ATTEMPTS, metadata=doc("tries in total, the first included")
    )
    on: list[RetryOn] = field(
        default_factory=lambda: list(DEFAULT_ON),
        metadata=doc("outcomes retried: connect_failure reset timeout 5xx 502 503 504"),
    )
    per_try_timeout: Duration | None = field(
        default=DEFAULT_PER_TRY_TIMEOUT, metadata=doc("timeout of each try; null = route's")
    )
    grpc_on: list[GrpcRetryOn] = field(
        default_factory=list,
        metadata=doc("gRPC statuses retried on routes matching grpc: (Envoy retry_on "
                     "cancelled, deadline-exceeded, internal, resource-exhausted, unavailable); "
                     "any method, as Envoy"))
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    retry_non_idempotent: bool = field(
        default=DEFAULT_RETRY_NON_IDEMPOTENT,
        metadata=doc("also retry POST/PATCH/... that reached the upstream"),
    )
    replay_body_limit: Size = field(
        default=DEFAULT_REPLAY_BODY_LIMIT,
        metadata=doc("bodies larger than this are not buffered, so not retried"),
    )
    budget: BudgetConfig | None = field(
        default_factory=BudgetConfig, metadata=doc("retry budget; null = none")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.attempts < 1:
            problems.append(("attempts", f"must be >= 1 (1 = no retries), got {self.attempts}"))
        for i, name in enumerate(self.on):
            if name in self.on[:i]:
                problems.append((f"on[{i}]", f"{name!r} is listed twice"))
        for i, grpc_name in enumerate(self.grpc_on):
            if grpc_name in self.grpc_on[:i]:
                problems.append((f"grpc_on[{i}]", f"{grpc_name!r} is listed twice"))
        if self.per_try_timeout is not None and not self.per_try_timeout > 0:
            problems.append(("per_try_timeout", f"must be > 0, got {self.per_try_timeout}"))
        problems += [(f"backoff.{k}", r) for k, r in self.backoff.check()]
        if self.budget is not None:
            problems += [(f"budget.{k}", r) for k, r in self.budget.check()]
        return problems


class RetryPolicy:
    """Compiled `retries:` of one route; shared by all its requests; stateless."""

    __slots__ = ("cfg", "_attempts", "_mask", "_any_method", "_base", "_max", "_body_limit",
                 "grpc_statuses")

    def __init__(self, cfg: RetryConfig | None = None) -> None:
        cfg = cfg if cfg is not None else RetryConfig()
        problems = cfg.check()
        if problems:
            raise ValueError("; ".join(f"retries.{k}: {r}" for k, r in problems))
        self.cfg = cfg
        self._attempts = cfg.attempts
        self._mask = mask_of(cfg.on)
        self._any_method = cfg.retry_non_idempotent
        self._base = cfg.backoff.base
        self._max = cfg.backoff.max
        self._body_limit = cfg.replay_body_limit
        # grpc-status values (as sent) that may be retried: trailers-only answers only, as
        # Envoy (a status in trailers comes after the response began).
        self.grpc_statuses = frozenset(b"%d" % GRPC_CODES[n] for n in cfg.grpc_on)

    def should_retry(
        self, attempt: int, outcome: Outcome, method: str, body_replayable: bool
    ) -> bool:
        """May the request be tried again after try number `attempt` (1 = first) ended so?"""
        if attempt >= self._attempts or not body_replayable:
            return False
        flags = outcome.flags
        if not flags & self._mask:
            return False
        return (
            self._any_method
            or method in IDEMPOTENT_METHODS
            or bool(flags & F_CONNECT_FAILURE)
        )

    def should_retry_grpc(self, attempt: int, body_replayable: bool) -> bool:
        """May a call be tried again after try `attempt` ended with a status in
        `grpc_statuses`? Any method (gRPC calls are POSTs): Envoy and gRPC's own retry policy
        retry on status alone."""
        return attempt < self._attempts and body_replayable

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Wait before retry number `attempt` (1 = first retry): uniform in [0, ceiling], the
        ceiling doubling from `base` per retry up to `max` (full jitter, as AWS recommends,
        with Envoy's 25 ms base)."""
        n = attempt - 1 if attempt > 1 else 0
        ceiling = self._base * (1 << n) if n < _MAX_DOUBLINGS else self._max
        if ceiling > self._max:
            ceiling = self._max
        return rng.random() * ceiling

    def can_replay(self, body_length: int | None) -> bool:
        """Should the shell buffer this body for replay? None = unknown length (chunked):
        the shell may buffer up to the limit and give up past it."""
        return body_length is None or body_length <= self._body_limit

    @property
    def attempts(self) -> int:
        return self._attempts


class RetryBudget:
    """Envoy-style retry budget for one upstream (per worker): retries in flight may be at most
    max(min_concurrency, percent % of requests in flight). The shell keeps both counters."""

    __slots__ = ("cfg", "_percent", "_min")

    def __init__(self, cfg: BudgetConfig | None = None) -> None:
        cfg = cfg if cfg is not None else BudgetConfig()
        problems = cfg.check()
        if problems:
            raise ValueError("; ".join(f"retries.budget.{k}: {r}" for k, r in problems))
        self.cfg = cfg
        self._percent = cfg.percent
        self._min = cfg.min_concurrency

    def allowed(self, active_requests: int) -> int:
        """Retries that may be in flight while `active_requests` requests are."""
        share = int(active_requests * self._percent / 100.0)  # floor; x*p/100 stays exact
        return share if share > self._min else self._min

    def try_acquire(self, active_requests: int, active_retries: int) -> bool:
        """May one more retry start? `active_retries` excludes it; the shell increments its
        counter on True and decrements when that retry ends."""
        return active_retries < self.allowed(active_requests)
