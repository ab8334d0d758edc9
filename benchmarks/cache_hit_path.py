#!/usr/bin/env python3
"""The cost of one cache hit, with no syscalls: the listener, exchange, cache filter and
telemetry driven in-process through fake transports (as benchmarks/hot_path.py does for a
proxied request), the response stored once and then served from the cache.

    python3 benchmarks/cache_hit_path.py [--requests 200000] [--proxied]

`--proxied` runs the same request through the same route without the cache filter, for
comparison. Instructions per request: run it under callgrind twice and divide the difference
(startup cancels out):

    for n in 2000 12000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python3 benchmarks/cache_hit_path.py --requests $n 2>&1 | grep Collected; done
    (instructions per request: the difference of the two totals / 10000)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from email.utils import formatdate

from hot_path import FakeTransport

from edgeward.compose import Registry, compile_snapshot
from edgeward.config.text import load_text
from edgeward.gateway import tune_gc
from edgeward.http.h1.client import UpstreamConnection
from edgeward.http.h1.server import H1Connection
from edgeward.http.listener import ListenerState
from edgeward.http.outbox import outbox_for
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.proxy.factory import ExchangeFactory
from edgeward.proxy.telemetry import Telemetry
from edgeward.sections import listener_settings

CONFIG = """
upstreams: {up: {targets: ["127.0.0.1:9"]}}
routes: [{name: all, match: {path_prefix: /}, upstream: up, filters: [FILTERS]}]
"""
REQUEST = (b"GET /api/items?id=7 HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: %s\r\n"
            b"Content-Type: text/plain\r\nCache-Control: max-age=86400\r\nETag: \"v1\"\r\n"
            b"Content-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n"
            ) % formatdate(usegmt=True).encode()  # fresh now: max-age counts from Date


async def run(requests: int, proxied: bool) -> None:
    loop = asyncio.get_running_loop()
    cfg = load_text(CONFIG.replace("FILTERS", "" if proxied else "{cache: {}}"), "bench")
    snapshot = compile_snapshot(cfg, loop, Registry())
    settings = listener_settings(cfg)
    factory = ExchangeFactory(snapshot, settings)
    state = ListenerState(settings, factory)
    telemetry = Telemetry(GatewayMetrics(), None, None)
    factory.on_done = telemetry.exchange_done
    client_out: list[bytes] = []
    upstream_out: list[bytes] = []
    conn = H1Connection(state, loop)
    conn.connection_made(FakeTransport(client_out, ("10.0.0.1", 5555)))  # type: ignore[arg-type]
    cluster = next(iter(snapshot.clusters.values()))
    pool = cluster.pools[cluster.endpoints[0]]
    up = UpstreamConnection(pool)
    up.connection_made(FakeTransport(upstream_out, ("127.0.0.1", 9)))  # type: ignore[arg-type]
    pool.give_back(up)
    flush = outbox_for(loop).flush

    def one() -> None:
        for _ in range(32):
            conn.data_received(REQUEST)
            if proxied:
                up.data_received(RESPONSE)
        flush()

    conn.data_received(REQUEST)  # the miss: stored
    up.data_received(RESPONSE)
    flush()
    for _ in range(64):
        one()
    tune_gc()
    out = b"".join(client_out)
    assert out.count(b"HTTP/1.1 200 OK") == 64 * 32 + 1, out[:2000]
    if not proxied:
        assert out.count(b"x-cache: HIT") == 64 * 32, out[-600:]
        assert b"".join(upstream_out).count(b"GET /api/items") == 1
    client_out.clear()
    upstream_out.clear()
    n = requests // 32 * 32
    t0 = time.process_time()
    for _ in range(n // 32):
        one()
    elapsed = time.process_time() - t0
    assert b"".join(client_out).count(b"HTTP/1.1 200 OK") == n  # checked after timing
    print(f"{'proxied' if proxied else 'cache hit'}: {elapsed / n * 1e6:.2f} us of Python "
          f"per request ({n} requests)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--proxied", action="store_true")
    args = ap.parse_args()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(args.requests, args.proxied))
    loop.close()


if __name__ == "__main__":
    main()
