"""ns per RouteTable.match with 10, 100, 1000 routes, against a linear first-match scan.

Run: python benchmarks/bench_routing.py
Sets: prefix-heavy (one host, N path_prefix routes of assorted depth) and host-heavy (N exact
hosts and N/10 wildcards, each with a few paths). Requests hit routes spread across the set and
misses that fall to a catch-all. The linear column is a naive ordered scan with the same
predicates (what a Starlette-style router does), to show which one grows with N.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from edgeward.request import SimpleRequest
from edgeward.routing.config import MatchConfig
from edgeward.routing.table import RouteTable


def prefix_heavy(n: int, rng: random.Random) -> tuple[list[MatchConfig], list[SimpleRequest]]:
    routes: list[MatchConfig] = []
    for i in range(n - 1):
        depth = 1 + i % 3
        segs = [f"svc{i}", "v1", "items"][:depth]
        routes.append(MatchConfig(path_prefix="/" + "/".join(segs), methods=["GET", "POST"]))
    routes.append(MatchConfig(path_prefix="/"))  # catch-all last, so a linear scan can find others
    reqs = [SimpleRequest(path=f"/svc{rng.randrange(n - 1)}/v1/items/{k}") for k in range(200)]
    reqs += [SimpleRequest(path=f"/none/{k}") for k in range(50)]
    return routes, reqs


def host_heavy(n: int, rng: random.Random) -> tuple[list[MatchConfig], list[SimpleRequest]]:
    routes: list[MatchConfig] = []
    for i in range(n):
        if i % 10 == 9:
            routes.append(MatchConfig(host=f"*.zone{i}.example.com", path_prefix="/"))
        else:
            routes.append(MatchConfig(host=f"h{i}.example.com", path_prefix=f"/p{i % 3}"))
    routes.append(MatchConfig())
    reqs = [SimpleRequest(host=f"h{rng.randrange(n)}.example.com", path="/p1/x")
            for _ in range(150)]
    reqs += [SimpleRequest(host=f"a.b.zone{10 * rng.randrange(n // 10) + 9}.example.com", path="/q")
             for _ in range(50)]
    reqs += [SimpleRequest(host="unknown.org", path="/") for _ in range(50)]
    return routes, reqs


def linear(routes: list[MatchConfig]) -> Callable[[SimpleRequest], int | None]:
    """First match in config order (no precedence): the baseline an index must beat."""
    compiled = [(i, RouteTable([(m, i)])) for i, m in enumerate(routes)]

    def match(req: SimpleRequest) -> int | None:
        for i, one in compiled:
            if one.match(req) is not None:
                return i
        return None

    return match


def ns_per_call(fn: Callable[[SimpleRequest], object], reqs: list[SimpleRequest]) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(4):
            for r in reqs:
                fn(r)
        best = min(best, (time.perf_counter_ns() - t0) / (4 * len(reqs)))
    return best


def main() -> None:
    print(f"{'set':<14}{'routes':>7}{'table ns/match':>16}{'linear ns/match':>17}")
    for name, build in (("prefix-heavy", prefix_heavy), ("host-heavy", host_heavy)):
        for n in (10, 100, 1000):
            routes, reqs = build(n, random.Random(n))
            table = RouteTable([(m, i) for i, m in enumerate(routes)])
            lin = linear(routes)
            t = ns_per_call(table.match, reqs)
            lt = ns_per_call(lin, reqs)
            print(f"{name:<14}{len(routes):>7}{t:>16.0f}{lt:>17.0f}")


if __name__ == "__main__":
    main()
