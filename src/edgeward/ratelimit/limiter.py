"""The one interface the shell calls, and the per-process limiter behind it.

    decision = limiter.decide_sync(key, now)      # a Decision, or None: "ask the store"
    if decision is None:
        decision = await limiter.decide(key, now)  # only global limiters ever get here

A LocalLimiter always answers synchronously. A GlobalLimiter answers synchronously whenever it
can (a lease with tokens left, a cached refusal, Redis known to be down) and otherwise needs
one await. Shadow mode (`enforce: false`) lives here, not in the algorithms: a refusal is
turned into an admission marked `shadow`, counted, and never sent to the client.
"""

from __future__ import annotations

from typing import Protocol

from edgeward.ratelimit.algorithm import Algorithm
from edgeward.ratelimit.config import RateLimitConfig
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.gcra import GCRA
from edgeward.ratelimit.leaky_bucket import LeakyBucket
from edgeward.ratelimit.sliding_window import SlidingWindow
from edgeward.ratelimit.token_bucket import TokenBucket


class LimiterStats:
    """Counters the shell exports as metrics (see docs/ratelimit.md)."""

    __slots__ = (
        "allowed", "refused", "shadow_refused", "store_calls", "store_errors", "fallback",
    )

    def __init__(self) -> None:
        self.allowed = 0          # admitted (enforced or not)
        self.refused = 0          # refused and answered 429
        self.shadow_refused = 0   # would have been refused; shadow mode let them through
        self.store_calls = 0      # Redis round trips (global limiters)
        self.store_errors = 0     # Redis calls that failed or timed out
        self.fallback = 0         # decisions taken by on_store_failure while Redis was away

    def as_dict(self) -> dict[str, int]:
        return {
            "allowed": self.allowed, "refused": self.refused,
            "shadow_refused": self.shadow_refused, "store_calls": self.store_calls,
            "store_errors": self.store_errors, "fallback": self.fallback,
        }


class Limiter(Protocol):
    local: bool
    stats: LimiterStats
    window: float

    def decide_sync(self, key: str, now: float, cost: int = 1) -> Decision | None: ...

    async def decide(self, key: str, now: float, cost: int = 1) -> Decision: ...

    def table_stats(self) -> dict[str, int]: ...


def settle(decision: Decision, enforce: bool, stats: LimiterStats) -> Decision:
    """Count the decision and apply shadow mode."""
    if decision.allowed:
        stats.allowed += 1
    elif enforce:
        stats.refused += 1
    else:
        stats.shadow_refused += 1
        stats.allowed += 1
        decision.allowed = True
        decision.shadow = True
        decision.retry_after = 0.0
    return decision


class LocalLimiter:
    """A per-process limiter: an algorithm plus shadow mode and counters."""

    __slots__ = ("algorithm", "enforce", "stats", "window", "local", "_gcra")

    def __init__(self, algorithm: Algorithm, *, enforce: bool = True) -> None:
        self.algorithm = algorithm
        self.enforce = enforce
        self.stats = LimiterStats()
        self.window = algorithm.window
        self.local = True
        # The default algorithm, called directly (compiled: a native call, not a lookup of
        # `decide` through the Algorithm protocol).
        self._gcra = algorithm if isinstance(algorithm, GCRA) else None

    def decide_sync(self, key: str, now: float, cost: int = 1) -> Decision:
        gcra = self._gcra
        decision = (gcra.decide(key, now, cost) if gcra is not None
                    else self.algorithm.decide(key, now, cost))
        return settle(decision, self.enforce, self.stats)

    async def decide(self, key: str, now: float, cost: int = 1) -> Decision:
        return self.decide_sync(key, now, cost)

    def table_stats(self) -> dict[str, int]:
        """The per-key table's size against its bounds (ratelimit/keymap.py)."""
        return self.algorithm.keys.stats()

    def __repr__(self) -> str:
        shadow = " shadow" if not self.enforce else ""
        return f"<LocalLimiter {self.algorithm!r}{shadow}>"


def make_algorithm(config: RateLimitConfig, *, share: int = 1) -> Algorithm:
    """The configured algorithm with `1/share` of the rate and burst (share = processes for the
    local fallback of a global limit; the burst never drops below 1)."""
    rate = config.rate / share
    burst = max(1, config.effective_burst // share)
    keys, size = config.max_keys, config.max_memory
    if config.algorithm == "gcra":
        return GCRA(rate, burst, keys, size)
    if config.algorithm == "token_bucket":
        return TokenBucket(rate, burst, keys, size)
    if config.algorithm == "leaky_bucket":
        return LeakyBucket(rate, burst, nodelay=config.nodelay, max_keys=keys, max_bytes=size)
    return SlidingWindow(rate, burst, keys, size)


def build_local_limiter(config: RateLimitConfig) -> LocalLimiter:
    return LocalLimiter(make_algorithm(config), enforce=config.enforce)
