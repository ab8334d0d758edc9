"""Cost of the resilience core on the request path, in nanoseconds per operation.

    python benchmarks/bench_resilience.py [--n 200000]

Measures CPU time (process_time, so other load on the machine inflates it less), best of 5:
  breaker admit+record   closed breaker, 2 % failures, time advancing 50 us per request
  breaker admit (open)   an open breaker refusing requests
  outlier record         20-endpoint cluster, 1 % failures spread across endpoints
  retry decision         should_retry + budget.try_acquire + backoff for a failed try
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from edgeward.balance.endpoint import Endpoint
from edgeward.resilience.breaker import BreakerConfig, CircuitBreaker
from edgeward.resilience.outcome import OK, RESET, Outcome
from edgeward.resilience.outlier import OutlierConfig, OutlierDetector
from edgeward.resilience.retry import RetryBudget, RetryConfig, RetryPolicy

E503 = Outcome.of_status(503)


def best_ns(run: Callable[[int], None], n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time_ns()
        run(n)
        best = min(best, (time.process_time_ns() - t0) / n)
    return best


def bench_loop(n: int) -> None:
    """The loop shape alone, subtracted from the others."""
    outcomes = [OK] * 1000
    now = 0.0
    for i in range(n):
        now += 0.00005
        outcomes[i % 1000]


def bench_breaker(n: int) -> None:
    b = CircuitBreaker(BreakerConfig())
    outcomes = [E503 if i % 50 == 0 else OK for i in range(1000)]
    admit, record = b.admit, b.record
    now = 0.0
    for i in range(n):
        now += 0.00005
        if admit(now):
            record(outcomes[i % 1000], 0.002, now)


def bench_breaker_open(n: int) -> None:
    b = CircuitBreaker(BreakerConfig(min_requests=1, open_for=1e9, open_for_max=1e9))
    b.record(E503, 0.0, 0.0)
    admit = b.admit
    for i in range(n):
        admit(1.0 + i * 1e-6)


def bench_outlier(n: int) -> None:
    eps = [Endpoint("127.0.0.1", 9000 + i) for i in range(20)]
    d = OutlierDetector(OutlierConfig())
    d.set_endpoints(eps)
    outcomes = [E503 if i % 100 == 7 else OK for i in range(1000)]
    record = d.record
    for i in range(n):
        record(eps[i % 20], outcomes[i % 1000], i * 0.0001)


def bench_retry(n: int) -> None:
    policy = RetryPolicy(RetryConfig(attempts=3, on=["reset", "503"]))
    budget = RetryBudget()
    rng = random.Random(1)
    should, acquire, backoff = policy.should_retry, budget.try_acquire, policy.backoff
    for i in range(n):
        if should(1 + (i & 1), RESET, "GET", True) and acquire(100, i % 25):
            backoff(1 + (i & 1), rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    loop = best_ns(bench_loop, n)
    print(f"{'(loop overhead)':24s} {loop:8.0f} ns/op, subtracted below")
    for name, fn in [
        ("breaker admit+record", bench_breaker),
        ("breaker admit (open)", bench_breaker_open),
        ("outlier record", bench_outlier),
        ("retry decision", bench_retry),
    ]:
        print(f"{name:24s} {best_ns(fn, n) - loop:8.0f} ns/op")


if __name__ == "__main__":
    main()
