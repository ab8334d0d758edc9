"""Stream 1 GiB up and 1 GiB down through a real `edgeward run` process; print time and RSS.

    python benchmarks/stream_memory.py [--bytes N]

The origin is tests/support/origin.py (it hashes uploads as they stream and generates
downloads on the fly); the client never holds the body either. The figure to watch is the
gateway's peak VmRSS, sampled every 50 ms: it must not grow with the body size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from proxy.test_exchange import RssSampler, stream_download, stream_upload  # noqa: E402
from support.gateway import GatewayProcess  # noqa: E402
from support.origin import Origin, pattern_sha256  # noqa: E402

CONFIG = """\
listen: {listen}
upstreams:
  origin: {targets: ["ORIGIN"]}
routes:
  - {name: stream, match: {host: stream.test}, upstream: origin, timeout: null}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=1 << 30)
    n = ap.parse_args().bytes
    digest = pattern_sha256(n)
    with Origin() as origin, \
            GatewayProcess.config(CONFIG.replace("ORIGIN", origin.address)) as gw:
        idle = gw.rss_kb()
        print(f"gateway pid {gw.pid}, idle RSS {idle / 1024:.1f} MiB, body {n / 2**20:.0f} MiB")
        with RssSampler(gw) as rss:
            t = time.monotonic()
            resp = stream_upload(gw.port, n)
            up = time.monotonic() - t
        ok = resp.json() == {"length": n, "sha256": digest}
        print(f"upload   {up:6.1f} s  {n / up / 2**20:7.1f} MiB/s  peak RSS "
              f"{rss.peak_kb / 1024:.1f} MiB  sha256 {'ok' if ok else 'MISMATCH'}")
        with RssSampler(gw) as rss:
            t = time.monotonic()
            count, got = stream_download(gw.port, n)
            down = time.monotonic() - t
        ok2 = count == n and got == digest
        print(f"download {down:6.1f} s  {n / down / 2**20:7.1f} MiB/s  peak RSS "
              f"{rss.peak_kb / 1024:.1f} MiB  sha256 {'ok' if ok2 else 'MISMATCH'}")
    return 0 if ok and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
