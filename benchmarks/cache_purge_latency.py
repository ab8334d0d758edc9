"""Purge-to-invisible latency across a fleet: how long after an operator asks gateway A to
purge a key do gateways B and C stop serving it.

    .venv/bin/python benchmarks/cache_purge_latency.py [--purges 200] [--gateways 3]

All on 127.0.0.1: a redis-server, an nginx origin answering every path with
`Cache-Control: max-age=3600`, and N `edgeward run` gateways (1 worker each) sharing the
purge stream (`cache.fleet`). For each purge: a fresh key is stored on every gateway (its
second GET is a HIT on each); then, at t0, POST /cache/purge on A starts while one thread per
other gateway asks it for the key again every POLL_GAP (0.5 ms) on a keep-alive connection;
a gateway's latency is the time from t0 to the first answer that is not a HIT. It includes
the admin call on A (local purge, XADD), the stream hop, and the poll's gap and own request
(up to ~0.8 ms on loopback: an upper bound's error, never a lower one). Bounded: --purges
rounds, each a few ms.
Last line: 'purge-to-invisible p50=X ms p99=Y ms max=Z ms (N samples)'.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchkit

# Between two polls of a gateway: polling flat out would take the cores the gateways and
# Redis need and measure the scheduler instead (adds at most this much to a sample).
POLL_GAP = 0.0005

NGINX = """worker_processes 1; daemon off; pid {tmp}/origin.pid; error_log {tmp}/origin.err;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {tmp};
  location / {{ default_type text/plain; add_header Cache-Control "max-age=3600";
               try_files /item =404; }} }} }}
"""

GATEWAY = """listen: 127.0.0.1:{port}
admin: 127.0.0.1:{admin}
redis: redis://127.0.0.1:{redis}/0
cache:
  fleet: {{stream: "bench:cache:purge", node: gw{i}}}
upstreams:
  origin: {{targets: ["127.0.0.1:{origin}"]}}
routes:
  - match: {{path_prefix: /}}
    upstream: origin
    filters: [{{cache: {{}}}}]
"""


def wait_port(port: int, timeout: float = 20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            c.getresponse().read()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def x_cache(conn: http.client.HTTPConnection, path: str) -> str:
    conn.request("GET", path, headers={"Host": "bench.test"})
    resp = conn.getresponse()
    resp.read()
    return resp.headers.get("X-Cache") or ""


def one_round(key: str, conns: list[http.client.HTTPConnection],
              purger: http.client.HTTPConnection, returned: list[float],
              after: list[float]) -> list[float]:
    for c in conns:
        x_cache(c, key)
        if x_cache(c, key) != "HIT":
            raise RuntimeError("the key was not stored")
    seen: list[float] = [0.0] * (len(conns) - 1)
    go = threading.Event()

    def poll(i: int, c: http.client.HTTPConnection) -> None:
        go.wait()
        while x_cache(c, key) == "HIT":
            time.sleep(POLL_GAP)  # leave the 2 cores to the gateways and Redis
        seen[i] = time.perf_counter()

    threads = [threading.Thread(target=poll, args=(i, c)) for i, c in enumerate(conns[1:])]
    for t in threads:
        t.start()
    body = json.dumps({"keys": [f"bench.test{key}"]})
    t0 = time.perf_counter()
    go.set()
    purger.request("POST", "/cache/purge", body=body,
                   headers={"Content-Type": "application/json"})
    reply = purger.getresponse()
    reply.read()
    back = time.perf_counter()
    returned.append((back - t0) * 1000)
    if reply.status != 200:
        raise RuntimeError(f"purge answered {reply.status}")
    for t in threads:
        t.join(timeout=10)
    after.extend(max(0.0, (s - back) * 1000) for s in seen)
    return [(s - t0) * 1000 for s in seen]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--purges", type=int, default=200)
    ap.add_argument("--gateways", type=int, default=3)
    a = ap.parse_args()
    sys.setswitchinterval(0.0002)  # pollers hand the GIL on quickly: they measure, not queue
    tmp = tempfile.mkdtemp(prefix="purgebench-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "item"), "wb") as f:
        f.write(b"cached body\n")
    origin, redis_port = benchkit.free_port(), benchkit.free_port()
    with open(os.path.join(tmp, "origin.conf"), "w") as f:
        f.write(NGINX.format(tmp=tmp, port=origin))
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str]) -> None:
        err = open(os.path.join(tmp, f"proc{len(procs)}.err"), "w")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                      start_new_session=True))

    exe = shutil.which("edgeward")
    edgeward = [exe] if exe else [sys.executable, "-m", "edgeward.cli"]
    try:
        start([shutil.which("nginx") or "/usr/sbin/nginx", "-c", f"{tmp}/origin.conf"])
        start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no"])
        ports, admins = [], []
        for i in range(a.gateways):
            port, admin = benchkit.free_port(), benchkit.free_port()
            cfg = os.path.join(tmp, f"gw{i}.yaml")
            with open(cfg, "w") as f:
                f.write(GATEWAY.format(port=port, admin=admin, redis=redis_port, i=i,
                                       origin=origin))
            start([*edgeward, "run", "-c", cfg])
            ports.append(port)
            admins.append(admin)
        if not all(wait_port(p) for p in admins):
            print("purgebench: a gateway did not start")
            return 2
        time.sleep(0.5)  # the stream readers join their groups
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=5) for p in ports]
        purger = http.client.HTTPConnection("127.0.0.1", admins[0], timeout=5)
        samples: list[float] = []
        returned: list[float] = []  # the admin call's own time
        after: list[float] = []     # invisible on the others after the call returned
        for r in range(a.purges):
            samples.extend(one_round(f"/k{r}", conns, purger, returned, after))
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(f"# {os.cpu_count()} cpus; {a.gateways} gateways, {a.purges} purges on gw0, "
              f"latency seen on the {a.gateways - 1} others")
        returned.sort()
        print(f"# POST /cache/purge on gw0 returned after p50={statistics.median(returned):.2f}"
              f" ms p99={returned[int(len(returned) * 0.99)]:.2f} ms")
        after.sort()
        print(f"# invisible on the others after it returned: p50={statistics.median(after):.2f}"
              f" ms p99={after[int(len(after) * 0.99)]:.2f} ms")
        print(f"purge-to-invisible p50={p50:.2f} ms p99={p99:.2f} ms max={samples[-1]:.2f} ms "
              f"({len(samples)} samples)")
        return 0
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
