"""Route-level concurrency limit: at most `max_concurrent` requests in flight.

The shell calls try_acquire() before forwarding and release() exactly once when the exchange
ends (any outcome). A refused request is answered 503 with code `overloaded`, like Envoy's
max_requests circuit breaker and Sentinel's thread-count flow rule.
"""

from __future__ import annotations


class ConcurrencyLimiter:
    __slots__ = ("max_concurrent", "active", "refused")

    def __init__(self, max_concurrent: int) -> None:
        if isinstance(max_concurrent, bool) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent!r}")
        self.max_concurrent = max_concurrent
        self.active = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        if self.active >= self.max_concurrent:
            self.refused += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("release() without a matching try_acquire()")
        self.active -= 1

    def __repr__(self) -> str:
        return f"<ConcurrencyLimiter {self.active}/{self.max_concurrent} refused={self.refused}>"
