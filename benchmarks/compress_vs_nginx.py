"""Compression at the edge, side by side: edgeward's `compress` vs nginx `gzip on`.

    .venv/bin/python benchmarks/compress_vs_nginx.py [--level 1] [--body-bytes 16384]
        [--rounds 3] [--seconds 5] [--connections 64]

All on 127.0.0.1, as ../shared/bench/proxybench.py does (which stays as it is): an
upstream nginx serves a JSON body (16 KiB of generated API-like JSON by default) from a file;
a peer nginx (1 worker) proxies to it with upstream keep-alive and `gzip on;
gzip_comp_level LEVEL; gzip_types application/json; gzip_proxied any; gzip_vary on`;
edgeward (`edgeward run`, 1 worker) proxies to it with `compress: {algorithms: [gzip],
levels: {gzip: LEVEL}}`. wrk (1 thread, keep-alive connections) sends
`Accept-Encoding: gzip` to each in alternating rounds. Before loading, each contestant's
answer is checked: gzip-encoded and decoding to the upstream's body.
Last line: 'ratio gateway/nginx rps=R p99=P cpu/req=C' (medians), as proxybench prints it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import benchkit


def json_body(n: int, seed: int = 1) -> bytes:
    """n bytes of API-like JSON with varied values (ids, names, e-mails, scores, tags), the
    same every run; cut and closed to size."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]
    items: list[bytes] = []
    size = 1
    i = 0
    while size < n:
        item = json.dumps({"id": i, "name": f"{rng.choice(words)}-{rng.randrange(10**6)}",
                           "email": f"user{rng.randrange(10**5)}@example.com",
                           "active": rng.random() < 0.5, "score": round(rng.random() * 1000, 3),
                           "tags": rng.sample(words, 3)}).encode()
        items.append(item)
        size += len(item) + 1
        i += 1
    raw = b"[" + b",".join(items)
    return raw[:n - 1] + b"]"


def fetch(port: int) -> tuple[str | None, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers.get("Content-Encoding"), resp.read()


def wait_ready(port: int) -> bool:
    return benchkit.answers(lambda: fetch(port))


NGINX = """worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err;
events {{ worker_connections 8192; }}
http {{ access_log off; {server} }}
"""

EDGEWARD = """listen: 127.0.0.1:{port}
upstreams:
  app: {{targets: ["127.0.0.1:{up}"]}}
routes:
  - match: {{path_prefix: /}}
    upstream: app
    filters: [{{compress: {{algorithms: [gzip], levels: {{gzip: {level}}}}}}}]
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--body-bytes", type=int, default=16384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--gateway", default="edgeward run -c {config}")
    a = ap.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = tempfile.mkdtemp(prefix="compressbench-")
    os.chmod(tmp, 0o755)
    body = json_body(a.body_bytes)
    with open(os.path.join(tmp, "body.json"), "wb") as f:
        f.write(body)
    up, ngx, gw = benchkit.free_port(), benchkit.free_port(), benchkit.free_port()

    def conf(name: str, server: str) -> str:
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(NGINX.format(tmp=tmp, name=name, server=server))
        return path

    up_conf = conf("upstream", f"server {{ listen 127.0.0.1:{up} backlog=4096; root {tmp}; "
                               "location / { default_type application/json; "
                               "try_files /body.json =404; } }")
    px_conf = conf("nginx", f"upstream up {{ server 127.0.0.1:{up}; keepalive 256; }} "
                            f"server {{ listen 127.0.0.1:{ngx} backlog=4096; "
                            f"gzip on; gzip_comp_level {a.level}; gzip_types application/json; "
                            "gzip_proxied any; gzip_vary on; gzip_min_length 1024; "
                            "location / { proxy_pass http://up; proxy_http_version 1.1; "
                            'proxy_set_header Connection ""; } }')
    cfg = os.path.join(tmp, "edgeward.yaml")
    with open(cfg, "w") as f:
        f.write(EDGEWARD.format(port=gw, up=up, level=a.level))
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
                print(f"compressbench: {name} on port {port} did not become ready")
                return 2
        for name, port in ports.items():
            coding, raw = fetch(port)
            ok = coding == "gzip" and gzip.decompress(raw) == body
            print(f"# {name}: Content-Encoding {coding}, {len(raw)} bytes on the wire for "
                  f"{len(body)}; decodes to the upstream body: {ok}")
            if not ok:
                return 2
        print(f"# {os.cpu_count()} cpus; wrk -t1 -c{a.connections} -d{a.seconds}s "
              f"-H 'Accept-Encoding: gzip'; JSON body {len(body)} B; gzip level {a.level}; "
              f"gateway: {cmd}")
        results: dict[str, list[dict[str, float]]] = {n: [] for n in ports}
        for r in range(a.rounds):
            order = list(ports) if r % 2 == 0 else list(reversed(ports))
            for n in order:
                res = benchkit.measured(pgids[n], f"http://127.0.0.1:{ports[n]}/", a.seconds,
                                        a.connections, "-H", "Accept-Encoding: gzip")
                results[n].append(res)
                print(f"round {r + 1} {n:8s} rps={res['rps']:9.0f} p99={res['p99']:.2f}ms "
                      f"cpu/req={res['cpu_us']:.1f}us non2xx={res['non2xx']:.0f}")
        med = benchkit.medians(results)
        for n, (rps, p99, cpu) in med.items():
            print(f"median {n:8s} rps={rps:9.0f} p99={p99:.2f}ms cpu/req={cpu:.1f}us")
        print(f"ratio gateway/nginx {benchkit.ratio(med)}")
        print(json.dumps({"level": a.level, "body_bytes": len(body)}))
        return 0
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
