"""A global rate limit over 4 gateway processes and one real redis-server, end to end.

Starts a redis-server, an origin and GATEWAYS `edgeward run -c` processes (same config,
`scope: global, key: route`), floods them over keep-alive connections for SECONDS in
direct mode, then in lease mode, and prints per mode: requests answered, admitted versus
the budget burst + rate·t, and Redis script calls per request (INFO commandstats, evalsha +
eval, before/after).

    python benchmarks/global_limit.py [--seconds 3] [--rate 200] [--burst 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster._cluster import flood, gateways, redis_server  # noqa: E402
from tests.support.origin import Origin  # noqa: E402

GATEWAYS = 4


def config(origin: str, redis_url: str, rate: int, burst: int) -> str:
    def route(mode: str) -> str:
        return (f"  - {{name: {mode}, match: {{path_prefix: /{mode}}}, upstream: o, "
                f"rate_limit: {{rate: {rate}/s, burst: {burst}, scope: global, key: route, "
                f"mode: {mode}, processes: {GATEWAYS}}}}}\n")
    return (f"listen: {{listen}}\nredis: '{redis_url}'\n"
            f"upstreams:\n  o: {{targets: ['{origin}']}}\nroutes:\n"
            + route("direct") + route("lease"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--connections", type=int, default=2, help="per gateway")
    args = ap.parse_args()
    budget = args.burst + args.rate * args.seconds
    print(f"{GATEWAYS} gateways, rate {args.rate}/s, burst {args.burst}, {args.seconds:g} s "
          f"-> budget {budget:g}")
    with Origin() as origin, redis_server() as redis:
        text = config(origin.address, redis.url, args.rate, args.burst)
        with gateways([text] * GATEWAYS) as gws:
            ports = [gw.port for gw in gws]
            flood(ports, "/warmup-404", 0.3)      # connections and code paths warm
            print(f"{'mode':<8}{'answered':>10}{'req/s':>9}{'admitted':>10}{'/budget':>9}"
                  f"{'redis calls':>13}{'calls/req':>11}{'errors':>8}")
            for mode in ("direct", "lease"):
                before = redis.script_calls()
                res = flood(ports, f"/{mode}", args.seconds, per_port=args.connections)
                calls = redis.script_calls() - before
                print(f"{mode:<8}{res.total:>10}{res.total / args.seconds:>9.0f}"
                      f"{res.admitted:>10}{res.admitted / budget:>9.3f}{calls:>13}"
                      f"{calls / max(1, res.total):>11.4f}{len(res.errors):>8}")


if __name__ == "__main__":
    main()
