"""HTTP/2 at the edge, side by side: edgeward vs nginx (`http2`), h2c and h2 over TLS.

    .venv/bin/python benchmarks/h2_vs_nginx.py [--rounds 3] [--seconds 5] [--clients 16]
        [--streams 10] [--modes h2c,h2]

All on 127.0.0.1, as ../shared/bench/proxybench.py does: an upstream nginx serves a 12-byte
body over plain HTTP/1.1; a peer nginx (1 worker) takes HTTP/2 from clients (`listen ...
http2`: nginx 1.22's spelling of `http2 on`, h2c with prior knowledge on a plain port, h2 by
ALPN on a TLS port) and proxies to it with upstream keep-alive; edgeward (`edgeward run`,
1 worker, HTTP/2 on by default) does the same on its plain and TLS listeners. Both keep up to
256 idle upstream connections (nginx `keepalive 256`, edgeward `max_idle: 256`): C x M
streams in flight need that many HTTP/1.1 upstream connections. TLS: the same
ECDSA P-256 certificate, TLS 1.2+ with Mozilla's intermediate ciphers on both.

Load: h2load (Debian `nghttp2-client`), 1 thread, C clients with M concurrent streams each,
for S seconds after a 1 s warm-up, alternating rounds; p99 from h2load's per-request log; CPU
per request of each contestant's process group from /proc. Each answer is checked first.
Last line per mode: 'ratio gateway/nginx MODE rps=R p99=P cpu/req=C' (medians).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile

import benchkit
from https_vs_nginx import BODY, NGINX, NGINX_TLS, make_certificate, wait_ready

EDGEWARD = """listen: 127.0.0.1:{plain}
listeners:
  - address: 127.0.0.1:{tls}
    tls: {{certificates: [{{cert: {cert}, key: {key}}}]}}
upstreams:
  app: {{targets: ["127.0.0.1:{up}"], max_idle: 256}}
routes:
  - {{match: {{path_prefix: /}}, upstream: app}}
"""


def h2load(url: str, seconds: int, clients: int, streams: int, log: str) -> dict[str, float]:
    """One h2load run: requests/s, p99 in ms (from the per-request log), requests, failed."""
    out = subprocess.run(["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{seconds}",
                          "--warm-up-time=1", f"--log-file={log}", url],
                         capture_output=True, text=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed",
                     out)
    times = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                times.append(int(parts[2]) / 1000.0)  # microseconds -> ms
    os.unlink(log)
    p99 = statistics.quantiles(times, n=100)[98] if len(times) > 100 else float("nan")
    return {"rps": float(rps.group(1)) if rps else 0.0, "p99": p99,
            "requests": float(done.group(1)) if done else 0.0,
            "failed": float(done.group(3)) if done else -1.0}


def measured(pgid: int, url: str, a: argparse.Namespace, log: str) -> dict[str, float]:
    cpu0 = benchkit.group_cpu_seconds(pgid)
    res = h2load(url, a.seconds, a.clients, a.streams, log)
    # h2load's count excludes the warm-up second; the CPU was spent over both.
    spent = benchkit.group_cpu_seconds(pgid) - cpu0
    res["cpu_us"] = spent * 1e6 / max(1.0, res["requests"] * (a.seconds + 1) / a.seconds)
    return res


def check(url: str) -> bool:
    """The contestant answers `url` over HTTP/2 with the upstream's body."""
    out = subprocess.run(["h2load", "-n1", "-c1", "-v", url], capture_output=True, text=True)
    return "1 succeeded" in out.stdout and "Application protocol: h2" in out.stdout


def run_mode(mode: str, urls: dict[str, str], pgids: dict[str, int], tmp: str,
             a: argparse.Namespace) -> None:
    print(f"# mode {mode}: h2load -t1 -c{a.clients} -m{a.streams} -D{a.seconds}")
    results: dict[str, list[dict[str, float]]] = {n: [] for n in urls}
    for r in range(a.rounds):
        order = list(urls) if r % 2 == 0 else list(reversed(urls))
        for n in order:
            res = measured(pgids[n], urls[n], a, os.path.join(tmp, "h2load.log"))
            results[n].append(res)
            print(f"round {r + 1} {mode} {n:8s} rps={res['rps']:9.0f} p99={res['p99']:.2f}ms "
                  f"cpu/req={res['cpu_us']:.1f}us failed={res['failed']:.0f}")
    med = benchkit.medians(results)
    for n, (rps, p99, cpu) in med.items():
        print(f"median {mode} {n:8s} rps={rps:9.0f} p99={p99:.2f}ms cpu/req={cpu:.1f}us")
    print(f"ratio gateway/nginx {mode} {benchkit.ratio(med)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--modes", default="h2c,h2")
    ap.add_argument("--gateway", default="edgeward run -c {config}")
    a = ap.parse_args()
    from edgeward.tls.config import MOZILLA_INTERMEDIATE_CIPHERS

    if shutil.which("h2load") is None:
        print("h2bench: h2load not found (apt-get install nghttp2-client)")
        return 2
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = tempfile.mkdtemp(prefix="h2bench-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "body.txt"), "wb") as f:
        f.write(BODY)
    cert, key = make_certificate(tmp, "ec")
    up = benchkit.free_port()
    ports = {k: benchkit.free_port() for k in ("nginx_h2c", "nginx_h2", "gw_h2c", "gw_h2")}

    def conf(name: str, server: str) -> str:
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(NGINX.format(tmp=tmp, name=name, server=server))
        return path

    # nginx closes a connection after keepalive_requests (1000) requests, HTTP/2 ones too
    # (GOAWAY, and h2load counts the streams cut off as failed); edgeward has no such cap.
    many = "keepalive_requests 10000000; keepalive_timeout 300s; "
    up_conf = conf("upstream", many + f"server {{ listen 127.0.0.1:{up} backlog=4096; root {tmp}; "
                               "location / { default_type text/plain; "
                               "try_files /body.txt =404; } }")
    tls = NGINX_TLS.format(ciphers=MOZILLA_INTERMEDIATE_CIPHERS, cert=cert, key=key)
    proxy = ("location / { proxy_pass http://up; proxy_http_version 1.1; "
             'proxy_set_header Connection ""; }')
    px_conf = conf("nginx", many + f"upstream up {{ server 127.0.0.1:{up}; keepalive 256; }} "
                            f"server {{ listen 127.0.0.1:{ports['nginx_h2c']} http2 "
                            f"backlog=4096; {proxy} }} "
                            f"server {{ listen 127.0.0.1:{ports['nginx_h2']} ssl http2 "
                            f"backlog=4096; {tls} {proxy} }}")
    cfg = os.path.join(tmp, "edgeward.yaml")
    with open(cfg, "w") as f:
        f.write(EDGEWARD.format(plain=ports["gw_h2c"], tls=ports["gw_h2"], up=up, cert=cert,
                                key=key))
    procs: list[subprocess.Popen[bytes]] = []

    start = benchkit.starter(procs, tmp)

    try:
        start([nginx, "-c", up_conf])
        pgids = {"nginx": start([nginx, "-c", px_conf]).pid}
        cmd = a.gateway.replace("{config}", cfg)
        pgids["gateway"] = start(["sh", "-c", "exec " + cmd]).pid
        for port in (up, *ports.values()):
            if not wait_ready(port, None):
                print(f"h2bench: port {port} did not become ready")
                return 2
        print(f"# {os.cpu_count()} cpus; gateway: {cmd}; {ssl.OPENSSL_VERSION}; "
              f"body {len(BODY)} bytes")
        for mode in a.modes.split(","):
            scheme = "http" if mode == "h2c" else "https"
            urls = {"nginx": f"{scheme}://127.0.0.1:{ports['nginx_' + mode]}/",
                    "gateway": f"{scheme}://127.0.0.1:{ports['gw_' + mode]}/"}
            for name, url in urls.items():
                if not check(url):
                    print(f"h2bench: {name} does not answer {url} over HTTP/2")
                    return 2
            run_mode(mode, urls, pgids, tmp, a)
        return 0
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
