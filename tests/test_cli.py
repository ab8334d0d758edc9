"""The `edgeward` command line as a user runs it: validate, run, proxy --workers, demo."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support.gateway import GatewayProcess, edgeward_command, free_port
from support.origin import Origin
from support.rawhttp import Response, get

GOOD = """\
listen: 127.0.0.1:18080
upstreams:
  api: {targets: ["127.0.0.1:9"]}
routes:
  - {match: {path_prefix: /api}, upstream: api, timeout: 3s}
"""

BAD = {
    "unknown-key": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9']}\n"
        "routes:\n  - {match: {path_prefix: /, colour: red}, upstream: api}\n",
        ["routes[0].match.colour: unknown key"],
    ),
    "wrong-type": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9']}\n"
        "routes:\n  - {match: {path_prefix: 5}, upstream: api}\n",
        ["routes[0].match.path_prefix: expected a string"],
    ),
    "bad-duration": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9'], connect_timeout: 5}\n"
        "routes:\n  - {match: {path_prefix: /}, upstream: api, timeout: 3 seconds}\n",
        ["upstreams.api.connect_timeout: expected a duration",
         "routes[0].timeout: expected a duration"],
    ),
    "unknown-upstream": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9']}\n"
        "routes:\n  - {match: {path_prefix: /}, upstream: orders}\n",
        ["routes[0].upstream: no upstream named 'orders'"],
    ),
    "duplicate-key": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9']}\n  api: {targets: ['127.0.0.1:8']}\n"
        "routes:\n  - {match: {path_prefix: /}, upstream: api}\n",
        ["upstreams.api: duplicate key (line 3; first at line 2)"],
    ),
    "empty": ("# nothing yet\n", ["(top): the config is empty"]),
    "yaml-syntax": (
        "upstreams:\n  api: {targets: ['127.0.0.1:9']\nroutes:\n  - x\n",
        ["line 3, column 1: YAML syntax error"],
    ),
}


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(edgeward_command() + list(args), capture_output=True, text=True,
                          timeout=timeout)


def test_validate_good_file_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert f"{path}: ok" in done.stdout


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_lists_each_problem_without_traceback(
        tmp_path: Path, command: str, case: str) -> None:
    text, expected = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    args = ["validate", str(path)] if command == "validate" else ["run", "-c", str(path)]
    done = run_cli(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(expected), done.stderr
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: "), line
        assert want in line, (want, line)


def test_validate_accepts_a_config_without_routes_and_says_what_it_means(
        tmp_path: Path) -> None:
    path = tmp_path / "empty-routes.yaml"
    path.write_text("routes: []\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "ok (0 routes, 0 upstreams)" in done.stdout
    assert "every request is answered 404" in done.stdout


def test_validate_missing_file(tmp_path: Path) -> None:
    done = run_cli("validate", str(tmp_path / "absent.yaml"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "cannot read the file" in done.stderr


def _worker_of(resp: Response) -> str:
    """The request-id prefix is random per worker process: it tells the workers apart."""
    rid = resp.header("x-request-id") or ""
    return rid.rsplit("-", 1)[0]


def test_proxy_with_two_workers_serves_from_both_and_exits_0(origin: Origin) -> None:
    gw = GatewayProcess.proxy(origin.address, workers=2).start()
    try:
        deadline = time.monotonic() + 5
        while len(gw.children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = gw.children()
        assert len(workers) == 2 and len(set(workers)) == 2
        assert all(gw.rss_kb(pid) > 0 for pid in workers)
        seen: set[str] = set()
        for _ in range(60):  # new connection each: SO_REUSEPORT spreads them
            resp = get(gw.port, "/echo")
            assert resp.status == 200
            seen.add(_worker_of(resp))
            if len(seen) == 2:
                break
        assert len(seen) == 2, "only one worker took traffic"
        assert gw.stop() == 0
        assert "Traceback" not in gw.stderr_text()
    finally:
        gw.stop()


def test_demo_answers_and_routes_canary_header() -> None:
    port = free_port()
    gw = GatewayProcess(["demo", "--listen", f"127.0.0.1:{port}"], port).start()
    try:
        deadline = time.monotonic() + 5
        resp = get(port, "/", host="localhost")
        while resp.status != 200 and time.monotonic() < deadline:  # origins start last
            time.sleep(0.1)
            resp = get(port, "/", host="localhost")
        assert resp.status == 200
        assert resp.json()["origin"] in ("stable", "canary")
        for _ in range(5):
            canary = get(port, "/x", [("x-canary", "1")], host="localhost")
            assert canary.status == 200
            assert canary.json()["origin"] == "canary"
            assert canary.header("x-origin") == "canary"
            assert canary.json()["headers"]["x-canary"] == "1"
        assert gw.stop() == 0
    finally:
        gw.stop()
