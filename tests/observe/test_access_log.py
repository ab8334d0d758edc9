"""Access log: JSON lines written by the thread, reopen after logrotate's rename, drops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeward.observe.access_log import FIELDS, AccessLog, AccessLogConfig, format_line
from edgeward.structs import ConfigError, load_struct


def _record(i: int, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "time": 1_714_564_800.123, "request_id": f"req-{i}", "trace_id": "ab" * 16,
        "client": "127.0.0.1", "method": "GET", "host": "api.example.com",
        "path": f"/orders/{i}", "status": 200, "route": "orders", "upstream": "orders",
        "endpoint": "127.0.0.1:8001", "bytes_in": 0, "bytes_out": 512, "duration": 0.0123,
        "upstream_connect": 0.0004, "upstream_response": 0.011, "retries": 0,
        "error_code": None,
    }
    rec.update(extra)
    return rec


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AccessLog]:
    alog = AccessLog(AccessLogConfig(path=str(tmp_path / "access.log"), flush_interval=0.05))
    alog.start()
    yield alog
    alog.close()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_line_per_request_with_every_field_in_order(log: AccessLog,
                                                             tmp_path: Path) -> None:
    log.log(_record(1))
    log.log(_record(2, status=502, error_code="upstream_unavailable", extra_field="x"))
    assert log.flush(5)
    raw = (tmp_path / "access.log").read_text().splitlines()
    assert len(raw) == 2
    first = json.loads(raw[0])
    assert list(first) == list(FIELDS)
    assert first["time"] == "2024-05-01T12:00:00.123Z"
    assert first["path"] == "/orders/1" and first["duration"] == 0.0123
    second = json.loads(raw[1])
    assert second["status"] == 502 and second["error_code"] == "upstream_unavailable"
    assert list(second)[-1] == "extra_field"


def test_missing_fields_are_null_and_odd_values_do_not_break_the_line() -> None:
    line = json.loads(format_line({"path": "/\u00e9\n\"x\"", "client": ("1.2.3.4", 5)}))
    assert line["status"] is None and line["time"] is None
    assert line["path"] == "/\u00e9\n\"x\""
    assert line["client"] == ["1.2.3.4", 5]
    assert json.loads(format_line({"client": object()}))["client"].startswith("<object")


def test_reopen_after_rename_writes_to_a_fresh_file(log: AccessLog, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log.log(_record(1))
    assert log.flush(5)
    os.rename(path, tmp_path / "access.log.1")  # what logrotate does
    log.log(_record(2))  # before the SIGHUP: still goes to the renamed file (open descriptor)
    assert log.flush(5)
    log.reopen()
    log.log(_record(3))
    assert log.flush(5)
    assert [r["request_id"] for r in _lines(tmp_path / "access.log.1")] == ["req-1", "req-2"]
    assert [r["request_id"] for r in _lines(path)] == ["req-3"]


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    alog = AccessLog(AccessLogConfig(path=str(tmp_path / "a.log"), max_queue=3))  # not started
    assert [alog.log(_record(i)) for i in range(5)] == [True, True, True, False, False]
    assert alog.dropped == 2
    alog.start()
    alog.close()
    assert [r["request_id"] for r in _lines(tmp_path / "a.log")] == ["req-0", "req-1", "req-2"]


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    alog = AccessLog(AccessLogConfig(path=str(tmp_path / "a.log"), flush_interval=60))
    alog.start()
    for i in range(100):
        alog.log(_record(i))
    alog.close()
    assert len(_lines(tmp_path / "a.log")) == 100
    assert alog.written == 100


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text('{"old":1}\n')
    alog = AccessLog(AccessLogConfig(path=str(path)))
    alog.start()
    alog.log(_record(1))
    alog.close()
    assert path.read_text().splitlines()[0] == '{"old":1}'
    assert len(path.read_text().splitlines()) == 2


def test_unwritable_path_counts_errors_and_drops(tmp_path: Path) -> None:
    alog = AccessLog(AccessLogConfig(path=str(tmp_path / "missing-dir" / "a.log"),
                                     flush_interval=0.05))
    alog.start()
    alog.log(_record(1))
    assert alog.flush(5)
    alog.close()
    assert alog.write_errors == 1 and alog.dropped == 1


def test_stdout_target_in_a_real_process() -> None:
    script = (
        "from edgeward.observe.access_log import AccessLog, AccessLogConfig\n"
        "log = AccessLog(AccessLogConfig(path='stdout'))\n"
        "log.start()\n"
        "log.log({'request_id': 'r1', 'status': 204})\n"
        "log.reopen()\n"
        "log.log({'request_id': 'r2', 'status': 200})\n"
        "log.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["r1", "r2"]


def test_config_is_off_by_default_and_defaults_are_pinned() -> None:
    cfg = load_struct(AccessLogConfig, {})
    assert cfg == AccessLogConfig(path=None, format="json", max_queue=8192, flush_interval=0.2)
    with pytest.raises(ValueError, match="access_log.path is not set"):
        AccessLog(cfg)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(AccessLogConfig, {"path": "/var/log/a.log", "format": "combined",
                                      "max_queue": 0}, path="access_log")
    assert "access_log.format: must be one of json, got 'combined'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_struct(AccessLogConfig, {"max_queue": 0, "flush_interval": "0s"},
                    path="access_log")
    assert "access_log.max_queue: must be >= 1, got 0" in str(err.value)
    assert "access_log.flush_interval: must be > 0" in str(err.value)
