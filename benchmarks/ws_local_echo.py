#!/usr/bin/env python3
"""WebSocket connections the gateway ends itself (a filter's `Reply.websocket`): RSS per idle
connection, and echo round trips/s against a plain `websockets` server.

The gateway runs `edgeward run` (1 worker) with the example echo filter
(examples/filters/ws_echo.py, the route of examples/filters/ws_echo.yaml).

1. Idle connections: opens N (default 10,000) with raw handshakes that then stay silent,
   checks the `edgeward_websocket_tunnels_open` gauge says N, and prints the worker's RSS
   growth per connection (the device gateway's case: many quiet devices on one worker).
2. Echo round trips/s: C `websockets` clients (one message in flight each) for D seconds per
   round, R rounds in turn, median kept, per message size, against the gateway's own echo
   and against a plain `websockets` echo server on uvloop in one process.

Why that peer: both end the WebSocket in Python in one process and echo in the same loop,
which is the job measured. nginx in front of a `websockets` echo would add a second hop and
a second process on the same two cores (and nginx does not end WebSocket itself), so the
comparison would say more about the extra hop than about the endpoint.

127.0.0.1 only; everything it starts is stopped by PID (SIGTERM, then SIGKILL) when it ends.

    python3 benchmarks/ws_local_echo.py [--connections 10000] [--clients 8] [--seconds 3]
                                        [--rounds 3] [--sizes 128 16384]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websocket_idle as wi  # noqa: E402  (the same process, port and RSS plumbing)

ROOT = Path(__file__).resolve().parents[1]
FD_SPARE = 500

PLAIN = wi.echo_script(uvloop=True)


def gateway_config(port: int, admin: int) -> str:
    return textwrap.dedent(f"""
        listen: 127.0.0.1:{port}
        admin: 127.0.0.1:{admin}
        routes:
          - name: echo
            match: {{path_prefix: /}}
            respond: {{status: 404}}
            websocket: {{idle_timeout: null, max_message: 16MiB}}
            filters: [{{python: "ws_echo:WsEcho"}}]
    """)


def start_gateway(stack: ExitStack, tmp: str) -> tuple[int, int, int]:
    port, admin = wi.free_port(), wi.free_port()
    cfg = os.path.join(tmp, "edgeward.yaml")
    with open(cfg, "w") as f:
        f.write(gateway_config(port, admin))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "examples" / "filters"), os.environ.get("PYTHONPATH", "")])}
    gw = stack.enter_context(wi.process(
        [sys.executable, "-m", "edgeward.cli", "run", "-c", cfg, "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "gw.log"), "wb"), env=env))
    wi.wait_port(port)
    wi.wait_port(admin)
    return port, admin, gw.pid


def idle_run(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        port, admin, pid = start_gateway(stack, tmp)

        async def run() -> dict[str, float]:
            warm = await wi.open_idle(port, min(100, n))
            await asyncio.sleep(0.5)
            before = wi.workers_rss(pid)
            started = time.monotonic()
            rest = await wi.open_idle(port, n - len(warm))
            opened = time.monotonic() - started
            deadline = time.monotonic() + 30
            while wi.open_tunnels_metric(admin) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            open_now = wi.open_tunnels_metric(admin)
            after = wi.workers_rss(pid)
            for t in warm + rest:
                t.close()
            return {"open_metric": open_now, "before": before, "after": after,
                    "per_bytes": (after - before) * 1024 / max(1, len(rest)),
                    "opened_s": opened}

        return asyncio.run(run())


def echo_run(args: argparse.Namespace) -> list[dict[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        gw_port, _, _ = start_gateway(stack, tmp)
        plain_port = wi.free_port()
        plain = stack.enter_context(wi.process([sys.executable, "-c", PLAIN, str(plain_port)],
                                               stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL))
        assert plain.stdout is not None
        plain.stdout.readline()
        wi.wait_port(plain_port)
        for size in args.sizes:
            for port in (gw_port, plain_port):  # warm both up
                asyncio.run(wi.echo_rate(port, size, args.clients, 1.0))
            rates: dict[str, list[float]] = {"edgeward": [], "websockets": []}
            for _ in range(args.rounds):  # in turn: a shared machine's noise hits both
                for name, port in (("edgeward", gw_port), ("websockets", plain_port)):
                    rates[name].append(asyncio.run(
                        wi.echo_rate(port, size, args.clients, args.seconds)))
            row = {name: statistics.median(r) for name, r in rates.items()}
            row["size"] = float(size)
            row["ratio"] = row["edgeward"] / row["websockets"] if row["websockets"] else 0.0
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 16384])
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-echo", action="store_true")
    args = ap.parse_args()
    fd_limit = wi.raise_fd_limit()
    if not 1 <= args.connections <= fd_limit - FD_SPARE:
        ap.error(f"--connections must be between 1 and {fd_limit - FD_SPARE} (one worker, "
                 "one descriptor each, and as many on the client side)")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if not args.skip_idle:
        idle = idle_run(args.connections)
        print(f"idle connections: {args.connections} on 1 worker, gauge says "
              f"{int(idle['open_metric'])} open; opened in {idle['opened_s']:.1f} s")
        print(f"gateway RSS {idle['before'] / 1024:.1f} -> {idle['after'] / 1024:.1f} MiB: "
              f"{idle['per_bytes'] / 1024:.2f} KiB per idle connection")
    if not args.skip_echo:
        rows = echo_run(args)
        print(f"echo round trips/s, {args.clients} clients, median of {args.rounds} rounds "
              f"of {args.seconds:g} s:")
        print(f"{'size':>8} {'edgeward':>9} {'websockets':>10} {'ratio':>6}")
        for r in rows:
            print(f"{int(r['size']):>8} {r['edgeward']:>9.0f} {r['websockets']:>10.0f} "
                  f"{r['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
