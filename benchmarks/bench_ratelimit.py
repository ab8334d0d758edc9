"""Rate-limit benchmarks.

    python benchmarks/bench_ratelimit.py [--seconds 3] [--processes 4]

1. ns per decision of each local algorithm (one hot key, and 100,000 keys in rotation).
2. Against a real redis-server started here on a free 127.0.0.1 port (stopped by PID at the
   end): checks/s, Redis calls per request and admissions vs budget for the global limiter in
   direct and lease mode, with N OS processes flooding one shared key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from edgeward.ratelimit.algorithm import Algorithm
from edgeward.ratelimit.gcra import GCRA
from edgeward.ratelimit.leaky_bucket import LeakyBucket
from edgeward.ratelimit.sliding_window import SlidingWindow
from edgeward.ratelimit.token_bucket import TokenBucket

RATE, BURST = 2000.0, 200


def bench_local(n: int = 300_000) -> None:
    makers = {
        "gcra": lambda: GCRA(1e9, 1000),
        "token_bucket": lambda: TokenBucket(1e9, 1000),
        "leaky_bucket": lambda: LeakyBucket(1e9, 1000, nodelay=True),
        "sliding_window": lambda: SlidingWindow(1e9, 1000),
    }
    keys = [f"10.0.{i // 256}.{i % 256}" for i in range(100_000)]
    print(f"{'algorithm':16} {'1 key ns/decision':>18} {'100k keys ns/decision':>22}")
    for name, make in makers.items():
        results = []
        for key_list in (["10.0.0.1"], keys):
            lim: Algorithm = make()
            decide = lim.decide
            count = len(key_list)
            t0 = time.perf_counter_ns()
            for i in range(n):
                decide(key_list[i % count], i * 1e-6)
            results.append((time.perf_counter_ns() - t0) / n)
        print(f"{name:16} {results[0]:18.0f} {results[1]:22.0f}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def worker(url: str, mode: str, start_at: float, seconds: float, processes: int) -> None:
    from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
    from edgeward.ratelimit.redis_store import GlobalLimiter, connect

    cfg = RateLimitConfig(rate=RATE, burst=BURST, scope="global", mode=mode,  # type: ignore[arg-type]
                          processes=processes)
    rcfg = RedisConfig(url=url, timeout=0.2)
    lim = GlobalLimiter(connect(rcfg), route="bench-" + mode, config=cfg, redis=rcfg)
    await lim.prepare()
    while time.time() < start_at:
        await asyncio.sleep(0.001)
    first = time.time()
    admitted = asked = 0
    until = time.monotonic() + seconds
    while (now := time.monotonic()) < until:
        d = lim.decide_sync("k", now)
        if d is None:
            d = await lim.decide("k", now)
        else:
            await asyncio.sleep(0)
        asked += 1
        admitted += d.allowed
    print(json.dumps({"admitted": admitted, "asked": asked, "calls": lim.stats.store_calls,
                      "errors": lim.stats.store_errors, "first": first, "last": time.time()}))


def bench_global(seconds: float, processes: int) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        url = f"redis://127.0.0.1:{port}/0"
        print(f"\nglobal limiter, {processes} processes flooding one key, rate {RATE:g}/s, "
              f"burst {BURST}, {seconds:g} s")
        print(f"{'mode':8} {'checks/s':>10} {'redis calls/req':>16} {'admitted':>9} "
              f"{'budget':>8} {'ratio':>6} {'errors':>6}")
        for mode in ("direct", "lease"):
            start_at = time.time() + 1.0
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", url, mode, str(start_at),
                     str(seconds), str(processes)],
                    stdout=subprocess.PIPE,
                )
                for _ in range(processes)
            ]
            outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
            span = max(o["last"] for o in outs) - min(o["first"] for o in outs)
            asked = sum(o["asked"] for o in outs)
            admitted = sum(o["admitted"] for o in outs)
            calls = sum(o["calls"] for o in outs)
            budget = BURST + RATE * span
            print(f"{mode:8} {asked / span:10.0f} {calls / asked:16.4f} {admitted:9d} "
                  f"{budget:8.0f} {admitted / budget:6.3f} {sum(o['errors'] for o in outs):6d}")
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, mode, start_at, seconds, processes = sys.argv[2:7]
        asyncio.run(worker(url, mode, float(start_at), float(seconds), int(processes)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    bench_local()
    bench_global(args.seconds, args.processes)


if __name__ == "__main__":
    main()
