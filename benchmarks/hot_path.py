#!/usr/bin/env python3
"""Python cost of one proxied request, with no syscalls: the listener, exchange, upstream codec
and telemetry driven in-process through fake transports.

A steadier figure than throughput on a shared machine: it counts only the gateway's own
Python work per request (parse, route, forward, stream back, account), which is what the
data-plane code controls. `--config` runs the same with a YAML config (default: one route).

    python3 benchmarks/hot_path.py [--requests 200000] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import time

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
routes: [{name: all, match: {path_prefix: /}, upstream: up}]
"""
REQUEST = (b"GET /api/items?id=7 HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 08:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
            b"hello world\n")


class FakeTransport:
    """Enough of asyncio.Transport for the protocols; `sink` gets what they write."""

    def __init__(self, sink: list[bytes], peer: tuple[str, int]) -> None:
        self.sink = sink
        self.peer = peer

    def write(self, data: bytes) -> None:
        self.sink.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.sink.extend(parts)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--config")
    ap.add_argument("--no-telemetry", action="store_true",
                    help="skip metrics accounting, to measure what it costs")
    args = ap.parse_args()
    text = open(args.config).read() if args.config else CONFIG
    # proxybench configs carry placeholders; any address does, nothing is connected to.
    for name, value in (("{listen}", "127.0.0.1:8080"), ("{upstream}", "127.0.0.1:9"),
                        ("{admin}", "127.0.0.1:9901")):
        text = text.replace(name, value)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cfg = load_text(text, "bench")
    snapshot = compile_snapshot(cfg, loop, Registry())
    settings = listener_settings(cfg)
    factory = ExchangeFactory(snapshot, settings)
    state = ListenerState(settings, factory)
    telemetry = Telemetry(GatewayMetrics(), None, None)
    factory.on_done = None if args.no_telemetry else telemetry.exchange_done
    client_out: list[bytes] = []
    upstream_out: list[bytes] = []
    conn = H1Connection(state, loop)
    conn.connection_made(FakeTransport(client_out, ("10.0.0.1", 5555)))  # type: ignore[arg-type]
    cluster = next(iter(snapshot.clusters.values()))
    endpoint = cluster.endpoints[0]
    pool = cluster.pools[endpoint]
    up = UpstreamConnection(pool)
    up.connection_made(FakeTransport(upstream_out, ("127.0.0.1", 9)))  # type: ignore[arg-type]
    pool.give_back(up)

    flush = outbox_for(loop).flush

    def one() -> None:
        # The listener's and the upstream's writes leave in a burst at the end of a loop
        # iteration (http/outbox.py); a worker under load finishes many requests per
        # iteration, so the flush runs here once per 32.
        for _ in range(32):
            conn.data_received(REQUEST)
            up.data_received(RESPONSE)
        flush()

    for _ in range(64):
        one()
    tune_gc()  # as a worker does at start (edgeward/gateway.py)
    # The warm-up's output is checked whole; the timed run's only by its size (a check of
    # every byte would cost as much as the gateway's own work).
    assert b"".join(client_out).count(b"HTTP/1.1 200 OK") == 64 * 32
    assert b"".join(upstream_out).count(b"GET /api/items") == 64 * 32
    client_out.clear()
    upstream_out.clear()
    n = args.requests // 32 * 32
    t0 = time.process_time()
    for _ in range(n // 32):
        one()
    elapsed = time.process_time() - t0
    assert len(client_out) >= n and len(upstream_out) >= n
    print(f"hot path: {elapsed / n * 1e6:.2f} us of Python per proxied request "
          f"({n} requests, config: {args.config or 'one route'}"
          f"{', no metrics' if args.no_telemetry else ''})")
    loop.close()


if __name__ == "__main__":
    main()
