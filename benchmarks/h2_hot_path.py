#!/usr/bin/env python3
"""Python cost of one request proxied from HTTP/2, with no syscalls: the HTTP/2 connection,
exchange, upstream codec and telemetry driven in-process through fake transports.

The HTTP/2 twin of benchmarks/hot_path.py: a client (ngh2, client role) keeps M streams in
flight on one connection, as h2load -mM does; each round sends M requests in one read, answers
each on its own HTTP/1.1 upstream connection, and lets the event loop run once (the connection's
flush), then feeds the gateway's frames back to the client (its WINDOW_UPDATEs come back in
the next round's read). The client's own time is not counted. Counts are fixed, so
`valgrind --tool=callgrind` at two counts gives instructions per request (the client's
included: subtract its share, the h2_hot_path.py frames, when reading the profile).

    python3 benchmarks/h2_hot_path.py [--requests 100000] [--streams 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import ngh2
import uvloop
from hot_path import RESPONSE, FakeTransport

from edgeward.compose import Registry, compile_snapshot
from edgeward.config.text import load_text
from edgeward.gateway import tune_gc
from edgeward.http.h1.client import UpstreamConnection
from edgeward.http.h2.limits import H2Limits
from edgeward.http.h2.server import H2Connection
from edgeward.http.listener import ListenerState
from edgeward.http.outbox import outbox_for
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.proxy.factory import ExchangeFactory
from edgeward.proxy.telemetry import Telemetry
from edgeward.sections import listener_settings

CONFIG = """
upstreams: {up: {targets: ["127.0.0.1:9"], max_idle: 256}}
routes: [{name: all, match: {path_prefix: /}, upstream: up}]
"""
REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"bench.local"),
           (b":path", b"/api/items?id=7"), (b"user-agent", b"h2load"), (b"accept", b"*/*")]


class Client:
    """The client's side: M requests per round, the gateway's frames read back."""

    def __init__(self, streams: int) -> None:
        self.conn = ngh2.Connection(ngh2.Role.CLIENT, ngh2.Configuration())
        self.conn.initiate_connection()
        self.streams = streams
        self.responses = 0

    def requests(self) -> bytes:
        for _ in range(self.streams):
            self.conn.send_request(REQUEST, end_stream=True)
        return self.conn.data_to_send()

    def read(self, frames: list[bytes]) -> None:
        self.conn.receive_data(b"".join(frames))
        frames.clear()
        for event in self.conn.events():
            kind = type(event)
            if kind is ngh2.StreamClosed:
                self.responses += 1
            elif kind is ngh2.ResponseReceived:
                assert isinstance(event, ngh2.ResponseReceived)
                assert event.headers[0] == (b":status", b"200"), event.headers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--streams", type=int, default=10)
    args = ap.parse_args()
    m = args.streams
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    cfg = load_text(CONFIG, "bench")
    snapshot = compile_snapshot(cfg, loop, Registry())
    settings = listener_settings(cfg)
    factory = ExchangeFactory(snapshot, settings)
    state = ListenerState(settings, factory)
    factory.on_done = Telemetry(GatewayMetrics(), None, None).exchange_done
    client_out: list[bytes] = []
    upstream_out: list[bytes] = []
    conn = H2Connection(state, loop, H2Limits())
    conn.connection_made(FakeTransport(client_out, ("10.0.0.1", 5555)))  # type: ignore[arg-type]
    cluster = next(iter(snapshot.clusters.values()))
    pool = cluster.pools[cluster.endpoints[0]]
    ups = []
    for _ in range(m):
        up = UpstreamConnection(pool)
        up.connection_made(FakeTransport(upstream_out, ("127.0.0.1", 9)))  # type: ignore[arg-type]
        pool.give_back(up)
        ups.append(up)
    flush = outbox_for(loop).flush
    client = Client(m)
    client.read(client_out)  # the server's SETTINGS

    clock = time.process_time
    spent = [0.0]  # the client's own time, not counted

    async def one() -> None:
        t = clock()
        frames = client.requests()
        t1 = clock()
        conn.data_received(frames)
        flush()
        for up in ups:
            up.data_received(RESPONSE)
        await asyncio.sleep(0)  # the loop runs once: the connection's flush
        flush()
        t2 = clock()
        client.read(client_out)
        spent[0] += t1 - t + clock() - t2

    async def run(rounds: int) -> None:
        for _ in range(rounds):
            await one()

    loop.run_until_complete(run(200))
    assert client.responses == 200 * m, client.responses
    assert b"".join(upstream_out).count(b"GET /api/items") == 200 * m
    tune_gc()
    upstream_out.clear()
    rounds = args.requests // m
    spent[0] = 0.0
    t0 = clock()
    loop.run_until_complete(run(rounds))
    elapsed = clock() - t0 - spent[0]
    n = rounds * m
    assert client.responses == 200 * m + n, client.responses
    print(f"h2 hot path: {elapsed / n * 1e6:.2f} us of Python per proxied request "
          f"({n} requests, {m} streams per round)")
    loop.close()


if __name__ == "__main__":
    main()
