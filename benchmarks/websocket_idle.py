#!/usr/bin/env python3
"""WebSocket tunnels through edgeward: RSS per idle tunnel, and echo throughput vs nginx.

1. Idle tunnels: starts a `websockets` echo origin and `edgeward run` (a route with
   `websocket: {idle_timeout: null}`), opens N tunnels (default 10,000) through it with raw
   handshakes that then stay silent, checks `edgeward_websocket_tunnels_open` says N, and
   prints the gateway workers' RSS growth per tunnel. Each tunnel holds two descriptors in
   the gateway: when N does not fit one worker's descriptor limit (raised to its hard limit
   here), the gateway runs as many workers as needed and their RSS is summed.
2. Throughput: C `websockets` clients echo messages of each size (one in flight per client)
   for D seconds through edgeward (1 worker), through nginx (1 worker, `proxy_http_version
   1.1` with the Upgrade/Connection headers) and straight to the origin, in R rounds taken
   in turn; prints the median round trips/s and the edgeward/nginx ratio.

127.0.0.1 only; everything it starts is stopped by PID (SIGTERM, then SIGKILL) when it ends.

    python3 benchmarks/websocket_idle.py [--tunnels 10000] [--clients 8] [--seconds 3]
                                          [--rounds 3] [--sizes 128 16384 262144]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

MAX_TUNNELS = 50_000   # the bound on --tunnels
OPEN_AT_ONCE = 200     # handshakes in flight while opening idle tunnels
FD_SPARE = 500         # descriptors a worker keeps for everything but tunnels

def echo_script(uvloop: bool = False) -> str:
    """A `websockets` echo server (`python -c SCRIPT PORT`), on uvloop if asked."""
    loop = "import uvloop\n" if uvloop else ""
    run = "uvloop.run" if uvloop else "asyncio.run"
    return textwrap.dedent("""
        import asyncio, sys
        """) + loop + textwrap.dedent(f"""
        from websockets.asyncio.server import serve

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        async def main(port):
            async with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None,
                             max_size=None, backlog=4096):
                print("ready", flush=True)
                await asyncio.Future()

        {run}(main(int(sys.argv[1])))
    """)


ORIGIN = echo_script()

NGINX = textwrap.dedent("""
    daemon off;
    master_process on;
    worker_processes 1;
    worker_rlimit_nofile 65535;
    pid {dir}/nginx.pid;
    error_log {dir}/error.log warn;
    events {{ worker_connections 20000; }}
    http {{
        access_log off;
        client_body_temp_path {dir}/body;
        proxy_temp_path {dir}/proxy;
        fastcgi_temp_path {dir}/fastcgi;
        uwsgi_temp_path {dir}/uwsgi;
        scgi_temp_path {dir}/scgi;
        server {{
            listen 127.0.0.1:{port};
            location / {{
                proxy_pass http://127.0.0.1:{origin};
                proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection "upgrade";
                proxy_read_timeout 3600s;
            }}
        }}
    }}
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return out


def workers_rss(pid: int) -> int:
    kids = children(pid)
    return sum(rss_kib(p) for p in kids) if kids else rss_kib(pid)


@contextmanager
def process(args: list[str], **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, start_new_session=True, **kw)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def edgeward_config(port: int, admin: int, origin: int) -> str:
    return textwrap.dedent(f"""
        listen: 127.0.0.1:{port}
        admin: 127.0.0.1:{admin}
        upstreams:
          echo: {{targets: ["127.0.0.1:{origin}"]}}
        routes:
          - match: {{path_prefix: /}}
            upstream: echo
            websocket: {{idle_timeout: null}}
    """)


def open_tunnels_metric(admin: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("edgeward_websocket_tunnels_open{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- idle tunnels ---------------------------------------------------------------------------
class Idle(asyncio.Protocol):
    """One silent client: a handshake, the 101, then nothing."""

    def __init__(self, done: asyncio.Future[bool]) -> None:
        self.done = done
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        key = base64.b64encode(os.urandom(16))
        transport.write(b"GET /idle HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"  # type: ignore[attr-defined]
                        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            self.done.set_result(self.buf.startswith(b"HTTP/1.1 101"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)


async def open_idle(port: int, n: int) -> list[asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(OPEN_AT_ONCE)
    transports: list[asyncio.BaseTransport] = []

    async def one() -> None:
        async with sem:
            done: asyncio.Future[bool] = loop.create_future()
            transport, _ = await loop.create_connection(lambda: Idle(done), "127.0.0.1", port)
            if not await done:
                raise SystemExit("a handshake did not get its 101")
            transports.append(transport)

    await asyncio.gather(*(one() for _ in range(n)))
    return transports


def idle_run(args: argparse.Namespace, origin: int, fd_limit: int) -> dict[str, float]:
    n = args.tunnels
    workers = max(1, -(-2 * n // (fd_limit - FD_SPARE)))
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        cfg = os.path.join(tmp, "edgeward.yaml")
        with open(cfg, "w") as f:
            f.write(edgeward_config(port, admin, origin))
        gw = stack.enter_context(process(
            [sys.executable, "-m", "edgeward.cli", "run", "-c", cfg, "--workers", str(workers)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "gw.log"), "wb")))
        wait_port(port)
        wait_port(admin)

        async def run() -> dict[str, float]:
            warm = await open_idle(port, min(100, n))
            time.sleep(0.5)
            before = workers_rss(gw.pid)
            started = time.monotonic()
            rest = await open_idle(port, n - len(warm))
            opened = time.monotonic() - started
            deadline = time.monotonic() + 30
            while open_tunnels_metric(admin) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            open_now = open_tunnels_metric(admin)
            after = workers_rss(gw.pid)
            for t in warm + rest:
                t.close()
            per = (after - before) * 1024 / max(1, len(rest))
            return {"tunnels": float(n), "workers": float(workers), "open_metric": open_now,
                    "rss_before_kib": float(before), "rss_after_kib": float(after),
                    "rss_per_tunnel_bytes": per, "open_seconds": opened}

        return asyncio.run(run())


# --- throughput -----------------------------------------------------------------------------
async def echo_rate(port: int, size: int, clients: int, seconds: float) -> float:
    from websockets.asyncio.client import connect

    payload = os.urandom(size)
    stop = time.monotonic() + seconds
    counts = [0] * clients

    async def one(i: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/echo", compression=None,
                           ping_interval=None, max_size=None) as ws:
            while time.monotonic() < stop:
                await ws.send(payload)
                await ws.recv()
                counts[i] += 1

    await asyncio.gather(*(one(i) for i in range(clients)))
    return sum(counts) / seconds


def throughput_run(args: argparse.Namespace, origin: int) -> list[dict[str, float]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    results = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        os.chmod(tmp, 0o755)
        gw_port, admin, ng_port = free_port(), free_port(), free_port()
        cfg = os.path.join(tmp, "edgeward.yaml")
        with open(cfg, "w") as f:
            f.write(edgeward_config(gw_port, admin, origin))
        stack.enter_context(process(
            [sys.executable, "-m", "edgeward.cli", "run", "-c", cfg, "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "gw.log"), "wb")))
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX.format(dir=tmp, port=ng_port, origin=origin))
        stack.enter_context(process([nginx, "-c", conf, "-p", tmp],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(gw_port)
        wait_port(ng_port)
        for size in args.sizes:
            asyncio.run(echo_rate(gw_port, size, args.clients, 1.0))  # warm both up
            asyncio.run(echo_rate(ng_port, size, args.clients, 1.0))
            rates: dict[str, list[float]] = {"direct": [], "edgeward": [], "nginx": []}
            # Rounds in turn, medians kept: a shared machine's noise hits all three alike.
            for _ in range(args.rounds):
                for name, port in (("direct", origin), ("edgeward", gw_port),
                                   ("nginx", ng_port)):
                    rates[name].append(asyncio.run(
                        echo_rate(port, size, args.clients, args.seconds)))
            row = {name: statistics.median(r) for name, r in rates.items()}
            row["size"] = float(size)
            row["ratio"] = row["edgeward"] / row["nginx"] if row["nginx"] else 0.0
            results.append(row)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunnels", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 16384, 262144])
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    if not 1 <= args.tunnels <= MAX_TUNNELS:
        ap.error(f"--tunnels must be between 1 and {MAX_TUNNELS}")
    fd_limit = raise_fd_limit()
    if args.tunnels + FD_SPARE > fd_limit:
        ap.error(f"{args.tunnels} client sockets do not fit this process's descriptor limit "
                 f"({fd_limit})")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    origin_port = free_port()
    report: dict[str, object] = {}
    with process([sys.executable, "-c", ORIGIN, str(origin_port)],
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as origin:
        assert origin.stdout is not None
        origin.stdout.readline()
        wait_port(origin_port)
        if not args.skip_idle:
            idle = idle_run(args, origin_port, fd_limit)
            report["idle"] = idle
            if not args.json:
                print(f"idle tunnels: {int(idle['tunnels'])} through {int(idle['workers'])} "
                      f"worker(s), gauge says {int(idle['open_metric'])} open; opened in "
                      f"{idle['open_seconds']:.1f} s")
                print(f"gateway RSS {idle['rss_before_kib'] / 1024:.1f} -> "
                      f"{idle['rss_after_kib'] / 1024:.1f} MiB: "
                      f"{idle['rss_per_tunnel_bytes'] / 1024:.2f} KiB per tunnel")
        if not args.skip_throughput:
            rows = throughput_run(args, origin_port)
            report["throughput"] = rows
            if not args.json:
                print(f"echo round trips/s, {args.clients} clients, median of {args.rounds} "
                      f"rounds of {args.seconds:.0f} s:")
                print(f"{'size':>8} {'direct':>9} {'edgeward':>9} {'nginx':>9} {'ratio':>6}")
                for r in rows:
                    print(f"{int(r['size']):>8} {r['direct']:>9.0f} {r['edgeward']:>9.0f} "
                          f"{r['nginx']:>9.0f} {r['ratio']:>6.2f}")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
