"""The `edgeward` command line as a user runs it: validate, run, proxy --workers, demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tests.observability.obskit import AdminGateway, wait_until
from tests.observability.obskit import get as admin_get

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
    "missing-certificate": (
        "listeners:\n  - {address: 127.0.0.1:9443, tls: {certificates: "
        "[{cert: /nonexistent/c.pem, key: /nonexistent/c.key}]}}\n",
        ["listeners[0].tls.certificates[0].cert: /nonexistent/c.pem: cannot read",
         "listeners[0].tls.certificates[0].key: /nonexistent/c.key: cannot read"],
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


def test_validate_reads_upstream_tls_files(tmp_path: Path) -> None:
    path = tmp_path / "ca.yaml"
    path.write_text("upstreams:\n  api: {targets: ['https://127.0.0.1:9'], "
                    "tls: {ca: /nonexistent/ca.pem}}\n"
                    "routes:\n  - {match: {path_prefix: /}, upstream: api}\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"{path}: upstreams.api.tls.ca: /nonexistent/ca.pem: "
                                   "cannot read: No such file or directory")


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
        # Without a usable native build (none, or compiling), said once, not per worker.
        state = subprocess.run(
            [sys.executable, "-c", "import edgeward._native as n; print(n.state)"],
            capture_output=True, text=True, check=True).stdout.strip()
        said = gw.stderr_text().count("data plane: plain Python")
        assert said == (1 if state in ("none", "building") else 0), (state, gw.stderr_text())
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


def test_every_option_has_help_and_the_top_help_shows_examples() -> None:
    import argparse

    from edgeward.cli import build_parser
    from edgeward.discovery.register import _parser as register_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choices = {**subs.choices, "register": register_parser()}
    for name, sub in [("edgeward", parser), *choices.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    done = run_cli("--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and "edgeward run -c gateway.yaml" in done.stdout
    assert "EDGEWARD_LOG_LEVEL" in done.stdout and "EDGEWARD_CONFIG" in done.stdout


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Info"])
def test_log_level_names_are_taken_in_any_case(origin: Origin, level: str) -> None:
    port = free_port()
    gw = GatewayProcess(["proxy", "--listen", f"127.0.0.1:{port}", "--to", origin.address],
                        port, env={"EDGEWARD_LOG_LEVEL": level})
    with gw:
        assert get(gw.port, "/echo").status == 200
    assert gw.returncode == 0
    assert "Traceback" not in gw.stderr_text()


def test_a_bad_log_level_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    done = subprocess.run(edgeward_command() + ["validate", str(path)], capture_output=True,
                          text=True, timeout=20, env={**os.environ, "EDGEWARD_LOG_LEVEL": "loud"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("edgeward: EDGEWARD_LOG_LEVEL: expected one of debug, info, "
                                   "warning, error, critical, got 'loud'")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_port_names_the_address_and_exits_1(workers: int) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = run_cli("proxy", "--listen", f"127.0.0.1:{port}", "--to", "127.0.0.1:9",
                       "--workers", str(workers))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"edgeward proxy: listen: 127.0.0.1:{port}: address already in use")


def test_a_busy_admin_port_names_the_address_and_exits_1(origin: Origin) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        admin = busy.getsockname()[1]
        done = run_cli("proxy", "--listen", f"127.0.0.1:{free_port()}", "--to",
                       origin.address, "--admin", f"127.0.0.1:{admin}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"admin.listen: 127.0.0.1:{admin}: address already in use" in done.stderr


def test_proxy_admin_serves_metrics_and_health(origin: Origin) -> None:
    port, admin = free_port(), free_port()
    gw = GatewayProcess(["proxy", "--listen", f"127.0.0.1:{port}", "--to", origin.address,
                         "--admin", f"127.0.0.1:{admin}"], port)
    with gw:
        assert get(gw.port, "/echo").status == 200
        assert admin_get(admin, "/healthz").status == 200
        metrics = admin_get(admin, "/metrics")
        assert metrics.status == 200
        assert b'edgeward_requests_total{route="default"' in metrics.body


def test_edgeward_config_names_the_config_when_none_is_given(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    env = {**os.environ, "EDGEWARD_CONFIG": str(path)}
    done = subprocess.run(edgeward_command() + ["validate"], capture_output=True, text=True,
                          timeout=20, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{path}: ok" in done.stdout
    env.pop("EDGEWARD_CONFIG")
    done = subprocess.run(edgeward_command() + ["run"], capture_output=True, text=True,
                          timeout=20, env=env)
    assert done.returncode == 2
    assert "no config: give a FILE (or -c FILE with run), or set EDGEWARD_CONFIG" in done.stderr


def test_run_takes_its_config_from_edgeward_config(origin: Origin) -> None:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="edgeward-e2e-"))
    path = workdir / "gw.yaml"
    path.write_text(f"listen: 127.0.0.1:{port}\n"
                    f"upstreams: {{o: {{targets: ['{origin.address}']}}}}\n"
                    "routes:\n  - {match: {path_prefix: /}, upstream: o}\n")
    with GatewayProcess(["run"], port, workdir, env={"EDGEWARD_CONFIG": str(path)}) as gw:
        assert get(gw.port, "/echo").status == 200


SIGHUP_CONFIG = """\
listen: "{listen}"
admin: "{admin}"
upstreams: {o: {targets: ["127.0.0.1:9"]}}
routes:
  - {match: {path_prefix: /}, upstream: o}
"""


def _reload_results(gw: AdminGateway) -> list[str]:
    return [r["result"] for r in gw.admin("GET", "/reloads").json()]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_rereads_the_config_and_keeps_every_process(workers: int) -> None:
    with AdminGateway(SIGHUP_CONFIG, workers=workers) as gw:
        before = gw.gw.children()
        assert "unchanged" not in _reload_results(gw)  # the watch never applies a same text
        os.kill(gw.gw.pid, signal.SIGHUP)
        # Only a reload started by the signal applies the unchanged file (and records it).
        wait_until(lambda: "unchanged" in _reload_results(gw), what="the SIGHUP reload")
        assert gw.gw.proc is not None and gw.gw.proc.poll() is None
        assert gw.gw.children() == before  # no worker died and was restarted
        assert gw.gw.stop() == 0
    assert "Traceback" not in gw.gw.stderr_text()
