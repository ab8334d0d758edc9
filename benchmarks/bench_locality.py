"""ns per pick: plain round robin, zone-aware (all local; spilling), and a label subset.

Run: python benchmarks/bench_locality.py [iterations]
12 endpoints in zones a, b, c (4 each), the gateway in a; "spilling" has two of a's down
(60 % local, 20 % to b and to c). The subset row is what a `subset` route pays in the cluster:
one dict lookup for the selector's balancer, then its pick.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from edgeward.balance import BalancerOptions, Endpoint, make_balancer
from edgeward.balance.locality import SubsetIndex, ZoneRouter, selector_of

REPEATS = 5


def best_ns(pick: Callable[[], object], iterations: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            pick()
        best = min(best, (time.perf_counter_ns() - start) / iterations)
    return best


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    eps = [Endpoint(f"10.0.0.{i + 1}", 80, 1, "abc"[i // 4], {"class": "iot" if i % 2 else "x"})
           for i in range(12)]
    options = BalancerOptions()
    rng = random.Random(1)
    everything = make_balancer(options, eps, rng)
    router = ZoneRouter("a", options, rng)
    router.set_endpoints(eps, False)
    subsets = SubsetIndex(options, rng)
    subsets.set_endpoints(eps)
    selector = selector_of({"class": "iot"})
    rows = [("round_robin (no zones)", lambda: everything.pick(None, 0.0)),
            ("zone-aware, all local", lambda: router.pick(None, 0.0, everything)),
            ("subset class=iot", lambda: subsets.balancer(selector).pick(None, 0.0))]
    figures = [(label, best_ns(f, iterations)) for label, f in rows]
    for e in eps[:2]:
        e.healthy = False
    everything.refresh()
    router.refresh(everything.panicking)
    figures.insert(2, ("zone-aware, spilling", best_ns(lambda: router.pick(None, 0.0, everything),
                                                      iterations)))
    print(f"python {sys.version.split()[0]}, {iterations} picks per row (best of {REPEATS})")
    for label, ns in figures:
        print(f"{label:<26}{ns:>8.0f} ns/pick")


if __name__ == "__main__":
    main()
