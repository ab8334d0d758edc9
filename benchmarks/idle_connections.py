#!/usr/bin/env python3
"""RSS of one gateway worker holding N idle keep-alive client connections (default 10,000).

Starts a trivial origin (nginx if present, else a Python one), `edgeward proxy` in front of it,
opens N connections to the gateway, sends one request on each and keeps them open idle, then
reads the worker's VmRSS from /proc. Loopback only; everything it starts is stopped by PID.

    python3 benchmarks/idle_connections.py [--connections 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchkit import rss_kib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} did not open")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    # The gateway's default server.max_connections keeps an eighth of its open-file limit for
    # upstream connections and files: give it room for every client above that.
    gw_limit = min(hard, args.connections * 5 // 4 + 1000)
    up, gw = free_port(), free_port()
    tmp = tempfile.mkdtemp()
    conf = os.path.join(tmp, "up.conf")
    with open(conf, "w") as f:
        f.write(f"worker_processes 1; daemon off; pid {tmp}/n.pid; error_log {tmp}/e.log;\n"
                "events { worker_connections 1024; }\n"
                f"http {{ access_log off; server {{ listen 127.0.0.1:{up}; "
                "location / { return 200 'ok'; } } }\n")
    procs = [subprocess.Popen(["nginx", "-c", conf])]
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "edgeward.cli", "proxy", "--listen", f"127.0.0.1:{gw}",
         "--to", f"127.0.0.1:{up}"], stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (gw_limit, gw_limit))))
    try:
        wait_port(up)
        wait_port(gw)
        gw_pid = procs[1].pid
        base = rss_kib(gw_pid)
        socks = []
        sel = selectors.DefaultSelector()
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", gw))
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            socks.append(s)
        answered = 0
        for s in socks:
            s.settimeout(10)
            if s.recv(4096).startswith(b"HTTP/1.1 200"):
                answered += 1
        time.sleep(1.0)
        held = rss_kib(gw_pid)
        print(f"gateway RSS before: {base / 1024:.1f} MiB; holding {len(socks)} idle keep-alive "
              f"connections ({answered} answered 200): {held / 1024:.1f} MiB; "
              f"{(held - base) * 1024 / max(1, len(socks)):.0f} bytes per connection")
        for s in socks:
            s.close()
        sel.close()
        return 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
