"""Global limits on real Redis deployments, all on 127.0.0.1, bounded in time.

1. Redis Cluster: three `redis-server --cluster-enabled yes` nodes, two `edgeward run -c`
   gateways sharing one limit (`scope: global, key: route`), flooded for SECONDS per mode
   (direct, then lease): admitted versus the budget burst + rate·t (t = the measured span), and
   Redis script calls per request summed over the three nodes (INFO commandstats).
2. Sentinel failover: a master, a replica and one redis-sentinel (down-after 1000 ms); a
   GlobalLimiter in this process (direct mode, `on_store_failure: local`, redis.timeout 50 ms,
   open_for 100 ms) asked RATE_SENTINEL times a second while the master is stopped: decisions
   that fell to `on_store_failure`, and the seconds from stopping the master to the first
   decision Redis answered again (on the new master).

    python benchmarks/redis_engines.py [--seconds 3] [--rate 200] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster._cluster import admin_port, flood, gateways, wait_admin  # noqa: E402
from tests.support.origin import Origin  # noqa: E402
from tests.support.redis_engines import (  # noqa: E402
    MASTER_NAME,
    RedisClusterNodes,
    SentinelGroup,
)

from edgeward.ratelimit.config import RateLimitConfig  # noqa: E402
from edgeward.ratelimit.redis_client import connect  # noqa: E402
from edgeward.ratelimit.redis_store import GlobalLimiter  # noqa: E402
from edgeward.structs import load_struct  # noqa: E402

GATEWAYS = 2
RATE_SENTINEL = 200          # decisions per second during the failover
FAILOVER_BOUND = 20.0        # seconds: give up if no new master by then


def cluster_config(origin: str, nodes: list[str], rate: int, burst: int) -> str:
    seeds = ", ".join(f"'{n}'" for n in nodes)

    def route(mode: str) -> str:
        return (f"  - {{name: {mode}, match: {{path_prefix: /{mode}}}, upstream: o, "
                f"rate_limit: {{rate: {rate}/s, burst: {burst}, scope: global, key: route, "
                f"mode: {mode}, processes: {GATEWAYS}}}}}\n")
    return (f"listen: {{listen}}\nadmin: {{admin}}\n"
            f"redis: {{cluster: {{nodes: [{seeds}]}}, timeout: 1s}}\n"
            f"upstreams:\n  o: {{targets: ['{origin}']}}\nroutes:\n"
            + route("direct") + route("lease"))


def cluster_run(folder: Path, args: argparse.Namespace) -> None:
    print(f"Redis Cluster (3 masters), {GATEWAYS} gateways, rate {args.rate}/s, "
          f"burst {args.burst}, {args.seconds:g} s per mode")
    (folder / "cluster").mkdir(parents=True, exist_ok=True)
    nodes = RedisClusterNodes(folder / "cluster").start()
    try:
        with Origin() as origin:
            text = cluster_config(origin.address, nodes.addresses, args.rate, args.burst)
            with gateways([text] * GATEWAYS) as gws:
                for gw in gws:
                    wait_admin(admin_port(gw))
                ports = [gw.port for gw in gws]
                flood(ports, "/warmup-404", 0.3)
                print(f"{'mode':<8}{'answered':>10}{'admitted':>10}{'budget':>9}"
                      f"{'/budget':>9}{'redis calls':>13}{'calls/req':>11}{'errors':>8}")
                for mode in ("direct", "lease"):
                    before = nodes.script_calls()
                    res = flood(ports, f"/{mode}", args.seconds, per_port=args.connections)
                    calls = nodes.script_calls() - before
                    budget = args.burst + args.rate * res.seconds
                    print(f"{mode:<8}{res.total:>10}{res.admitted:>10}{budget:>9.0f}"
                          f"{res.admitted / budget:>9.3f}{calls:>13}"
                          f"{calls / max(1, res.total):>11.4f}{len(res.errors):>8}")
    finally:
        nodes.stop()


async def drive_failover(group: SentinelGroup) -> tuple[int, int, float, int]:
    """(decisions, fell to on_store_failure, seconds to the new master, decisions after)."""
    from edgeward.ratelimit.config import RedisConfig

    redis = load_struct(RedisConfig, {
        "sentinel": {"master": MASTER_NAME, "nodes": [group.sentinel.address]},
        "timeout": "50ms", "open_for": "100ms"})
    rl = RateLimitConfig(rate=1000.0, burst=1000, scope="global", on_store_failure="local")
    lim = GlobalLimiter(connect(redis), route="failover", config=rl, redis=redis)
    assert await lim.prepare()
    step = 1 / RATE_SENTINEL
    for _ in range(RATE_SENTINEL // 2):            # half a second on the old master
        await lim.decide("k", time.monotonic())
        await asyncio.sleep(step)
    calls_before = lim.stats.store_calls - lim.stats.store_errors
    decisions_before, fallback_before = 0, lim.stats.fallback
    stopped = time.monotonic()
    group.master.stop()
    recovered = 0.0
    while time.monotonic() - stopped < FAILOVER_BOUND:
        await lim.decide("k", time.monotonic())
        decisions_before += 1
        answered = lim.stats.store_calls - lim.stats.store_errors
        if answered > calls_before and lim.store_up:
            recovered = time.monotonic() - stopped
            break
        await asyncio.sleep(step)
    after = 0
    for _ in range(RATE_SENTINEL // 2):            # half a second on the new master
        await lim.decide("k", time.monotonic())
        after += 1
        await asyncio.sleep(step)
    fell = lim.stats.fallback - fallback_before
    await lim.client.aclose()
    return decisions_before, fell, recovered, after


def sentinel_run(folder: Path) -> None:
    print(f"Sentinel failover (master + replica + 1 sentinel, down-after 1000 ms), "
          f"{RATE_SENTINEL} decisions/s, on_store_failure local, timeout 50ms, open_for 100ms")
    folder.mkdir(parents=True, exist_ok=True)
    group = SentinelGroup(folder).start()
    try:
        asked, fell, recovered, after = asyncio.run(drive_failover(group))
        new = group.master_port() == group.replica.port
    finally:
        group.stop()
    print(f"{'asked':>8}{'fell back':>11}{'new master used after':>23}{'then':>8}")
    print(f"{asked:>8}{fell:>11}{recovered:>21.2f} s{after:>8}  (failed over: {new})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--connections", type=int, default=2, help="per gateway")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster_run(Path(tmp), args)
        sentinel_run(Path(tmp) / "sentinel")


if __name__ == "__main__":
    main()
