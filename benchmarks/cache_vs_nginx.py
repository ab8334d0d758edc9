"""A cached route, side by side: edgeward's `cache` filter vs nginx `proxy_cache`.

    .venv/bin/python benchmarks/cache_vs_nginx.py [--body-bytes 2048] [--rounds 3]
        [--seconds 5] [--connections 64]

All on 127.0.0.1, as ../shared/bench/proxybench.py does (it cannot configure proxy_cache, so
this script starts its own contestants with benchkit.py): an upstream nginx serves a body
with `Cache-Control: max-age=3600` and an ETag; a peer nginx (1 worker) proxies to it with
`proxy_cache` (keys_zone 10m in a temp dir, which the page cache holds in memory) and
upstream keep-alive; edgeward (`edgeward run`, 1 worker) proxies to it with
`filters: [cache: {}]`. Before loading, each contestant is asked twice and must answer the
second time from its cache (X-Cache HIT / $upstream_cache_status HIT) with the upstream's
body; after the run, the upstream's access count shows that neither went back to it.
wrk (1 thread, keep-alive) loads each in alternating rounds.
Last line: 'ratio gateway/nginx rps=R p99=P cpu/req=C' (medians), as proxybench prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import benchkit

NGINX = """worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err;
events {{ worker_connections 8192; }}
http {{ {log} {server} }}
"""

EDGEWARD = """listen: 127.0.0.1:{port}
upstreams:
  app: {{targets: ["127.0.0.1:{up}"]}}
routes:
  - match: {{path_prefix: /}}
    upstream: app
    filters: [{{cache: {{}}}}]
"""


def fetch(port: int) -> tuple[str | None, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/item", timeout=5) as resp:
        return resp.headers.get("X-Cache"), resp.read()


def wait_ready(port: int) -> bool:
    return benchkit.answers(lambda: fetch(port))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body-bytes", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--gateway", default="edgeward run -c {config}")
    a = ap.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = tempfile.mkdtemp(prefix="cachebench-")
    os.chmod(tmp, 0o755)
    body = (b"0123456789abcdef" * (a.body_bytes // 16 + 1))[:a.body_bytes]
    with open(os.path.join(tmp, "item"), "wb") as f:
        f.write(body)
    up, ngx, gw = benchkit.free_port(), benchkit.free_port(), benchkit.free_port()

    def conf(name: str, server: str, log: str = "access_log off;") -> str:
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(NGINX.format(tmp=tmp, name=name, server=server, log=log))
        return path

    up_conf = conf("upstream", f"server {{ listen 127.0.0.1:{up} backlog=4096; root {tmp}; "
                               "location / { default_type application/json; etag on; "
                               'add_header Cache-Control "max-age=3600"; } }',
                   log=f"access_log {tmp}/upstream.access;")
    px_conf = conf("nginx", f"proxy_cache_path {tmp}/cache levels=1:2 keys_zone=c:10m "
                            "max_size=100m inactive=1h use_temp_path=off; "
                            f"upstream up {{ server 127.0.0.1:{up}; keepalive 256; }} "
                            f"server {{ listen 127.0.0.1:{ngx} backlog=4096; "
                            "location / { proxy_pass http://up; proxy_http_version 1.1; "
                            'proxy_set_header Connection ""; proxy_cache c; '
                            "add_header X-Cache $upstream_cache_status; } }")
    cfg = os.path.join(tmp, "edgeward.yaml")
    with open(cfg, "w") as f:
        f.write(EDGEWARD.format(port=gw, up=up))
    procs: list[subprocess.Popen[bytes]] = []

    start = benchkit.starter(procs, tmp)

    try:
        start([nginx, "-c", up_conf])
        pgids = {"nginx": start([nginx, "-c", px_conf]).pid}
        cmd = a.gateway.replace("{config}", cfg)
        pgids["gateway"] = start(["sh", "-c", "exec " + cmd]).pid
        ports = {"nginx": ngx, "gateway": gw}
        for name, port in [("upstream", up), *ports.items()]:
            if not wait_ready(port):
                print(f"cachebench: {name} on port {port} did not become ready")
                return 2
        for name, port in ports.items():
            label, raw = fetch(port)
            ok = label == "HIT" and raw == body
            print(f"# {name}: second answer X-Cache {label}, body is the upstream's: {ok}")
            if not ok:
                return 2
        upstream_log = os.path.join(tmp, "upstream.access")
        before = _lines(upstream_log)
        print(f"# {os.cpu_count()} cpus; wrk -t1 -c{a.connections} -d{a.seconds}s; body "
              f"{len(body)} B, Cache-Control max-age=3600; gateway: {cmd}")
        results: dict[str, list[dict[str, float]]] = {n: [] for n in ports}
        for r in range(a.rounds):
            order = list(ports) if r % 2 == 0 else list(reversed(ports))
            for n in order:
                res = benchkit.measured(pgids[n], f"http://127.0.0.1:{ports[n]}/item",
                                        a.seconds, a.connections)
                results[n].append(res)
                print(f"round {r + 1} {n:8s} rps={res['rps']:9.0f} p99={res['p99']:.2f}ms "
                      f"cpu/req={res['cpu_us']:.1f}us non2xx={res['non2xx']:.0f}")
        print(f"# upstream requests during the load: {_lines(upstream_log) - before}")
        med = benchkit.medians(results)
        for n, (rps, p99, cpu) in med.items():
            print(f"median {n:8s} rps={rps:9.0f} p99={p99:.2f}ms cpu/req={cpu:.1f}us")
        print(json.dumps({"body_bytes": len(body)}))
        print(f"ratio gateway/nginx {benchkit.ratio(med)}")
        return 0
    finally:
        benchkit.stop(procs, tmp)


def _lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
