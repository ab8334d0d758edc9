"""benchmarks/filters.yaml is what proxybench runs: it must validate once its placeholders are
filled, and really put the benchmark's `GET /` through every filter it lists."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from support.gateway import GatewayProcess, edgeward_command, free_port
from support.origin import Origin
from support.rawhttp import get

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "filters.yaml"


def render(upstream: str, admin: str, listen: str = "{listen}") -> str:
    return (BENCH.read_text().replace("{upstream}", upstream).replace("{admin}", admin)
            .replace("{listen}", listen))


def test_bench_config_validates(tmp_path: Path) -> None:
    path = tmp_path / "filters.yaml"
    path.write_text(render("127.0.0.1:18081", "127.0.0.1:19901", "127.0.0.1:18080"))
    done = subprocess.run(edgeward_command() + ["validate", str(path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_benchmark_request_goes_through_every_filter(origin: Origin) -> None:
    with GatewayProcess.config(render(origin.address, f"127.0.0.1:{free_port()}")) as gw:
        resp = get(gw.port, "/", host=f"127.0.0.1:{gw.port}")
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10,
                                      source_address=("127.0.0.2", 0)) as sock:  # not allowed
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            refused = sock.recv(65536)
    assert refused.startswith(b"HTTP/1.1 403 ")                  # ip
    assert resp.status == 200
    assert resp.header("vary") == "Origin"                       # cors
    assert resp.header("strict-transport-security")              # response_headers
    assert resp.header("x-frame-options") == "DENY"
    seen = {n.lower(): v for n, v in json.loads(resp.body)["headers"]}
    assert seen["x-forwarded-prefix"] == "/"                     # strip_prefix
    assert (seen["x-env"], seen["x-route"]) == ("prod", "edge")  # request_headers
