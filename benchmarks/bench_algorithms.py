"""ns per decision of every governance algorithm family, in one table to quote figures from.

    python benchmarks/bench_algorithms.py [--n 200000]

Each row is one decision the request path makes, timed in-process with no I/O:
  routing     RouteTable.match over the 100 routes of benchmarks/governance.yaml (the catch-all
              that proxybench hits, a longest-prefix hit, an exact-host hit, a regex hit) and
              TrafficSplit.choose (header rule, sticky percent_of, 90/10 weights)
  balance     pick with 10 endpoints (bench_balance.bench: best of 5, bare loop subtracted)
  resilience  breaker admit+record, open breaker admit, outlier record, retry decision
              (bench_resilience: CPU time, best of 5, bare loop subtracted)
  ratelimit   decide() of each local algorithm on one hot key and on 100,000 keys in rotation

Figures are CPython on this machine; on a shared machine read them relative to each other
(and to the `(loop)` row, the cost of the bare loop that the others already subtract).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_balance  # noqa: E402
import bench_resilience  # noqa: E402

from edgeward.config.text import load_text  # noqa: E402
from edgeward.ratelimit.algorithm import Algorithm  # noqa: E402
from edgeward.ratelimit.gcra import GCRA  # noqa: E402
from edgeward.ratelimit.leaky_bucket import LeakyBucket  # noqa: E402
from edgeward.ratelimit.sliding_window import SlidingWindow  # noqa: E402
from edgeward.ratelimit.token_bucket import TokenBucket  # noqa: E402
from edgeward.request import SimpleRequest  # noqa: E402
from edgeward.routing.split import TrafficSplit  # noqa: E402
from edgeward.routing.table import RouteTable  # noqa: E402

BALANCE_ENDPOINTS = 10
REPEAT = 5

SPLITS = """\
upstreams:
  canary: {targets: ["127.0.0.1:1"]}
  stable: {targets: ["127.0.0.1:2"]}
routes:
  - match: {host: a}
    split: [{upstream: canary, when: {header: {x-deployment-id: v2-canary}}}, {upstream: stable}]
  - match: {host: b}
    split: [{upstream: canary, when: {percent_of: {key: "header:x-user-id", percent: 10}}},
            {upstream: stable}]
  - match: {host: c}
    split: [{upstream: stable, weight: 90}, {upstream: canary, weight: 10}]
"""


def best_ns(calls: Callable[[int], None], n: int) -> float:
    """CPU ns per iteration of `calls(n)`, best of REPEAT runs."""
    return bench_resilience.best_ns(calls, n, REPEAT)


def loop_ns(n: int) -> float:
    def bare(n: int) -> None:
        items = [None] * 1024
        for i in range(n):
            items[i & 1023]
    return best_ns(bare, n)


def routing_rows(n: int, loop: float) -> list[tuple[str, float]]:
    text = (HERE / "governance.yaml").read_text()
    for k, v in (("{listen}", "127.0.0.1:8080"), ("{admin}", "127.0.0.1:9901"),
                 ("{upstream}", "127.0.0.1:8081")):
        text = text.replace(k, v)
    cfg = load_text(text, "governance.yaml")
    table = RouteTable([(rc.match, cfg.route_name(i)) for i, rc in enumerate(cfg.routes)])
    rows = []
    for label, req, want in [
        ("match / (catch-all, 100 routes)", SimpleRequest(host="127.0.0.1:8080"), "catch_all"),
        ("match longest prefix", SimpleRequest(path="/api/v3/orders/17"), "orders_v3"),
        ("match exact host", SimpleRequest(host="svc-7.api.example.com"), "host_7"),
        # Prefixes (even `/`) win over regexes by the documented precedence, so a path only
        # the regex would take still ends on the catch-all after the regexes are skipped.
        ("match /cart/42/items (regex shadowed)", SimpleRequest(path="/cart/42/items"),
         "catch_all"),
    ]:
        assert table.match(req) == want, (label, table.match(req))
        rows.append((label, _repeat_call(partial(table.match, req), n) - loop))
    split_cfg = load_text(SPLITS, "splits")
    rng = random.Random(7)
    splits = [TrafficSplit.from_config(rc.split or [], lambda name: name, rng)
              for rc in split_cfg.routes]
    canary = SimpleRequest(headers={"x-deployment-id": "v2-canary"})
    user = SimpleRequest(headers={"x-user-id": "user-42"})
    plain = SimpleRequest()
    for label, split, req in [("split header rule", splits[0], canary),
                              ("split percent_of (sticky)", splits[1], user),
                              ("split weights 90/10", splits[2], plain)]:
        rows.append((label, _repeat_call(partial(split.choose, req, "r"), n) - loop))
    return rows


def _repeat_call(call: Callable[[], object], n: int) -> float:
    def run(n: int) -> None:
        items = [None] * 1024
        for i in range(n):
            items[i & 1023]
            call()
    # The partial's own call is part of every row alike; the bare loop is subtracted.
    return best_ns(run, n)


def balance_rows(n: int) -> list[tuple[str, float]]:
    rows = []
    for label, kind, weighted, factor in bench_balance.CASES:
        ns, _build_ms = bench_balance.bench(kind, BALANCE_ENDPOINTS, weighted, factor, n)
        rows.append((f"pick {label}", ns))
    return rows


def resilience_rows(n: int) -> list[tuple[str, float]]:
    loop = bench_resilience.best_ns(bench_resilience.bench_loop, n)
    return [(label, bench_resilience.best_ns(fn, n) - loop) for label, fn in [
        ("breaker admit+record", bench_resilience.bench_breaker),
        ("breaker admit (open)", bench_resilience.bench_breaker_open),
        ("outlier record (20 endpoints)", bench_resilience.bench_outlier),
        ("retry decision + budget", bench_resilience.bench_retry),
    ]]


def ratelimit_rows(n: int, loop: float) -> list[tuple[str, float]]:
    makers: dict[str, Callable[[], Algorithm]] = {
        "gcra": lambda: GCRA(1e9, 1000),
        "token_bucket": lambda: TokenBucket(1e9, 1000),
        "leaky_bucket": lambda: LeakyBucket(1e9, 1000),
        "sliding_window": lambda: SlidingWindow(1e9, 1000),
    }
    many = [f"10.0.{i // 256}.{i % 256}" for i in range(100_000)]
    rows = []
    for name, make in makers.items():
        for label, keys in (("1 key", ["10.0.0.1"]), ("100k keys", many)):
            lim = make()

            def run(count: int, decide: Callable[..., object] = lim.decide,
                    keys: list[str] = keys) -> None:
                k = len(keys)
                for i in range(count):
                    decide(keys[i % k], i * 1e-6)

            rows.append((f"{name} decide ({label})", best_ns(run, n) - loop))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="decisions per measurement")
    n = parser.parse_args().n
    loop = loop_ns(n)
    print(f"# python {sys.version.split()[0]}; {n} decisions per row, best of {REPEAT}; "
          f"ns per decision (bare loop {loop:.0f} ns subtracted)")
    for family, rows in [
        ("routing", routing_rows(n, loop)),
        ("balance", balance_rows(n)),
        ("resilience", resilience_rows(n)),
        ("ratelimit", ratelimit_rows(n, loop)),
    ]:
        for label, ns in rows:
            print(f"{family:<11} {label:<38} {ns:8.0f}")


if __name__ == "__main__":
    main()
