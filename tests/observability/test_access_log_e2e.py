"""The JSON access log of a real gateway: one line per request with the documented fields in
the documented order, and logrotate's rename + SIGHUP moving new lines to a new file."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.observability.obskit import AdminGateway, call, get, wait_until
from tests.support.gateway import free_port
from tests.support.origin import Origin

FIELDS = ["time", "request_id", "trace_id", "client", "method", "host", "path", "status",
          "route", "upstream", "endpoint", "bytes_in", "bytes_out", "duration",
          "upstream_connect", "upstream_response", "retries", "error_code"]
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    assert text == "" or text.endswith("\n"), "a partial line was written"
    return [json.loads(line) for line in text.splitlines()]


def wait_lines(path: Path, n: int) -> list[dict[str, Any]]:
    lines = wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(read_lines(path)),
                       timeout=5, what=f"{n} lines in {path.name}")
    time.sleep(0.2)  # and no more than n
    lines = read_lines(path)
    assert len(lines) == n, lines
    return lines


@pytest.fixture()
def logged(tmp_path: Path) -> Iterator[tuple[AdminGateway, Origin, Path]]:
    log_path = tmp_path / "access.log"
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
access_log: {{path: "{log_path}", flush_interval: 50ms}}
tracing: {{sample_ratio: 0.0}}
upstreams:
  o: {{targets: ["{origin.address}"]}}
  dead: {{targets: ["127.0.0.1:{free_port()}"]}}
routes:
  - {{name: api, match: {{path_prefix: /api}}, upstream: o}}
  - {{name: broken, match: {{path_prefix: /broken}}, upstream: dead}}
""") as gw:
        yield gw, origin, log_path


def test_one_json_line_per_request_with_the_documented_fields(
        logged: tuple[AdminGateway, Origin, Path]) -> None:
    gw, origin, log_path = logged
    trace = "0af7651916cd43dd8448eb211c80319c"
    replies = [
        get(gw.port, "/api/orders?id=7", {"traceparent": f"00-{trace}-b7ad6b7169203331-01"}),
        call(gw.port, "POST", "/api/upload", body=b"x" * 1000),
        get(gw.port, "/nowhere"),
        get(gw.port, "/broken"),
    ]
    assert [r.status for r in replies] == [200, 200, 404, 502]
    lines = wait_lines(log_path, 4)
    by_id = {line["request_id"]: line for line in lines}
    assert set(by_id) == {r.headers["x-request-id"] for r in replies}
    for line in lines:
        assert list(line)[:len(FIELDS)] == FIELDS
        assert RFC3339_MS.match(line["time"]), line["time"]
        assert line["client"] == "127.0.0.1"
        assert line["host"] == "127.0.0.1"  # the name routed on, port stripped (nginx $host)
        assert 0 <= line["duration"] < 5
    get_line, post_line, miss, broken = (by_id[r.headers["x-request-id"]] for r in replies)

    assert get_line["trace_id"] == trace
    assert (get_line["method"], get_line["path"], get_line["status"]) == ("GET", "/api/orders",
                                                                          200)
    assert (get_line["route"], get_line["upstream"]) == ("api", "o")
    assert get_line["endpoint"] == origin.address
    assert get_line["bytes_out"] == len(replies[0].body)
    assert get_line["error_code"] is None and get_line["retries"] == 0
    assert 0 < get_line["upstream_response"] <= get_line["duration"]

    assert (post_line["method"], post_line["bytes_in"]) == ("POST", 1000)

    assert (miss["status"], miss["error_code"], miss["route"], miss["upstream"]) == (
        404, "route_not_found", None, None)
    assert miss["endpoint"] is None and miss["upstream_response"] is None

    assert (broken["status"], broken["error_code"]) == (502, "upstream_connect_failed")
    assert (broken["route"], broken["upstream"]) == ("broken", "dead")


def test_after_rename_and_sighup_new_lines_go_to_a_new_file(
        logged: tuple[AdminGateway, Origin, Path]) -> None:
    gw, _, log_path = logged
    for i in range(3):
        assert get(gw.port, f"/api/before/{i}").status == 200
    wait_lines(log_path, 3)

    rotated = log_path.with_name("access.log.1")
    os.rename(log_path, rotated)
    # Between the rename and the signal, lines still go to the open (renamed) file.
    assert get(gw.port, "/api/between").status == 200
    wait_lines(rotated, 4)
    assert not log_path.exists()

    os.kill(gw.gw.pid, signal.SIGHUP)
    time.sleep(0.2)  # the loop runs the handler
    for i in range(5):
        assert get(gw.port, f"/api/after/{i}").status == 200
    after = wait_lines(log_path, 5)
    assert [line["path"] for line in after] == [f"/api/after/{i}" for i in range(5)]
    old = read_lines(rotated)
    assert [line["path"] for line in old] == [f"/api/before/{i}" for i in range(3)] + [
        "/api/between"]
    assert gw.gw.proc is not None and gw.gw.proc.poll() is None  # SIGHUP did not stop it
    assert get(gw.admin_port, "/healthz").status == 200
