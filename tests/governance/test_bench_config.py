"""benchmarks/governance.yaml is what proxybench runs: it must validate once its placeholders
are filled, hold 100 routes, and really send the benchmark's `GET /` through the catch-all route
with its limiter (admitting everything) to the least_request upstream behind a breaker.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from governance.named_origin import NamedOrigin
from support.gateway import GatewayProcess, edgeward_command, free_port
from support.rawhttp import RawConnection

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "governance.yaml"
REQUESTS = 200


def render(upstream: str, admin: str, listen: str = "{listen}") -> str:
    return (BENCH.read_text().replace("{upstream}", upstream).replace("{admin}", admin)
            .replace("{listen}", listen))


def test_bench_config_validates_with_100_routes(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text(render("127.0.0.1:18081", "127.0.0.1:19901", "127.0.0.1:18080"))
    done = subprocess.run(edgeward_command() + ["validate", str(path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    cfg = yaml.safe_load(path.read_text())
    routes = cfg["routes"]
    assert len(routes) == 100
    assert routes[-1]["match"] == {"path_prefix": "/"}
    assert re.fullmatch(r"\d+/s", routes[-1]["rate_limit"]["rate"])
    main = cfg["upstreams"][routes[-1]["upstream"]]
    assert main["balance"] == "least_request" and main["circuit_breaker"]


@pytest.fixture(scope="module")
def bench_gateway() -> Iterator[tuple[GatewayProcess, NamedOrigin, int]]:
    admin = free_port()
    with NamedOrigin("bench-upstream") as origin, \
            GatewayProcess.config(render(origin.address, f"127.0.0.1:{admin}")) as gw:
        yield gw, origin, admin


def test_root_goes_through_catch_all_with_limiter_and_never_refused(
        bench_gateway: tuple[GatewayProcess, NamedOrigin, int]) -> None:
    gw, origin, admin = bench_gateway
    mark = origin.mark()
    with RawConnection(gw.port) as conn:
        for _ in range(REQUESTS):
            conn.send(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n\r\n".encode())
            resp = conn.read_response()
            assert resp.status == 200 and resp.json()["origin"] == "bench-upstream"
    assert origin.served(mark) == REQUESTS
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    ok = [line for line in metrics.splitlines()
          if line.startswith("edgeward_requests_total{") and 'route="catch_all"' in line
          and 'code="200"' in line]
    assert ok and float(ok[0].rsplit(" ", 1)[1]) == REQUESTS, ok
    refused = [line for line in metrics.splitlines()
               if line.startswith("edgeward_ratelimit_refused_total{")
               and 'route="catch_all"' in line]
    assert all(float(line.rsplit(" ", 1)[1]) == 0 for line in refused), refused
