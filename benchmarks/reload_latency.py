"""Time from an etcd write to the new route serving, through `edgeward run -c etcd://...`.

Starts a real etcd, an origin and one gateway on free 127.0.0.1 ports; then, SAMPLES times,
writes a config adding route /rN with `etcdctl put` and polls the gateway for /rN in a
tight loop until it answers 200. Prints p50/p99/max in milliseconds twice: from when the
put returned (etcd has committed; the watch may already have fired, so this is a lower
bound) and from before etcdctl was started (includes etcdctl's own process start and gRPC
dial, an upper bound).

    python benchmarks/reload_latency.py [--samples 100]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures_etcd import EtcdServer  # noqa: E402
from tests.support.gateway import GatewayProcess, free_port  # noqa: E402
from tests.support.origin import Origin  # noqa: E402

KEY = "/edgeward/bench/config"


def config(port: int, origin: str, n: int) -> str:
    routes = "".join(f"  - {{name: r{i}, match: {{path: /r{i}}}, upstream: o}}\n"
                     for i in range(max(0, n - 4), n + 1))
    return (f"listen: 127.0.0.1:{port}\nupstreams:\n  o: {{targets: ['{origin}']}}\n"
            f"routes:\n{routes}")


def status(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    etcd = EtcdServer(work / "etcd")
    etcd.start()
    origin = Origin().start()
    port = free_port()
    try:
        etcd.put(KEY, config(port, origin.address, 0))
        with GatewayProcess(["run", "-c", f"etcd://{etcd.url}{KEY}"], port, work):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            while status(conn, "/r0") != 200:
                time.sleep(0.01)
            after_put: list[float] = []
            before_put: list[float] = []
            for n in range(1, args.samples + 1):
                began = time.perf_counter()
                etcd.put(KEY, config(port, origin.address, n))
                start = time.perf_counter()
                while status(conn, f"/r{n}") != 200:
                    if time.perf_counter() - start > 10:
                        raise SystemExit(f"route /r{n} not served after 10 s")
                done = time.perf_counter()
                after_put.append((done - start) * 1000)
                before_put.append((done - began) * 1000)
            conn.close()
    finally:
        origin.stop()
        etcd.stop()
    for label, samples in (("from put returned", after_put),
                           ("from etcdctl started", before_put)):
        qs = statistics.quantiles(samples, n=100, method="inclusive")
        print(f"etcd write -> new route served ({label}), {len(samples)} samples: "
              f"p50 {qs[49]:.1f} ms, p99 {qs[98]:.1f} ms, max {max(samples):.1f} ms")


if __name__ == "__main__":
    main()
