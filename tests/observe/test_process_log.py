"""observe/process_log.py: level names in any case, JSON lines with structured fields, the
environment winning over the config's `logging:` section."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from edgeward.observe.process_log import (
    JsonFormatter,
    ProcessLog,
    apply_config,
    configure,
    parse_format,
    parse_level,
)


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def test_levels_in_any_case_and_precise_refusals() -> None:
    assert parse_level("debug") == parse_level("DEBUG") == logging.DEBUG
    assert parse_level(" Warning ") == logging.WARNING
    with pytest.raises(ValueError, match="EDGEWARD_LOG_LEVEL: expected one of debug, info"):
        parse_level("verbose")
    assert parse_format("JSON") == "json"
    with pytest.raises(ValueError, match="EDGEWARD_LOG_FORMAT: expected one of text, json"):
        parse_format("logfmt")


def test_a_json_line_carries_the_message_and_the_fields() -> None:
    record = logging.LogRecord("edgeward.proxy", logging.WARNING, __file__, 1,
                               "upstream %s down", ("orders",), None)
    record.fields = {"upstream": "orders", "failures": 3, "message": "not overwritten"}
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "warning" and doc["logger"] == "edgeward.proxy"
    assert doc["message"] == "upstream orders down"
    assert doc["upstream"] == "orders" and doc["failures"] == 3
    assert doc["time"].endswith("Z") and "T" in doc["time"]


def test_an_exception_is_one_json_member() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in doc["exception"]


def test_the_environment_wins_over_the_config(root_handlers: None) -> None:
    handler = configure({"EDGEWARD_LOG_LEVEL": "error"})
    assert logging.getLogger().level == logging.ERROR
    apply_config("debug", "json")
    assert logging.getLogger().level == logging.ERROR      # the variable wins
    assert isinstance(handler.formatter, JsonFormatter)    # format not set there: config's
    assert [h for h in logging.getLogger().handlers if isinstance(h, ProcessLog)] == [handler]


def test_the_config_applies_when_the_environment_is_silent(root_handlers: None) -> None:
    configure({})
    assert logging.getLogger().level == logging.INFO
    apply_config("warning", "text")
    assert logging.getLogger().level == logging.WARNING


def test_a_gateway_logs_json_lines_and_one_warning_for_a_dead_endpoint() -> None:
    from tests.observability.obskit import get, wait_until
    from tests.support.gateway import GatewayProcess, free_port

    dead = free_port()
    text = ('listen: "{listen}"\nlogging: {format: json}\n'
            f'upstreams: {{gone: {{targets: ["127.0.0.1:{dead}"]}}}}\n'
            "routes:\n  - {match: {path_prefix: /}, upstream: gone}\n")
    with GatewayProcess.config(text) as gw:
        assert [get(gw.port, f"/x/{i}").status for i in range(20)] == [502] * 20

        def warnings() -> list[dict[str, object]]:
            docs = [json.loads(line) for line in gw.stderr_text().splitlines()]
            return [d for d in docs if d.get("event") == "upstream_connect_failed"]

        (warning,) = wait_until(warnings, what="the connect failure warning")
        assert gw.stop() == 0
        lines = gw.stderr_text().splitlines()
    assert warning["level"] == "warning"
    assert warning["upstream"] == "gone" and warning["endpoint"] == f"127.0.0.1:{dead}"
    assert warning["reason"] == "connection refused"
    assert 1 <= int(str(warning["failures"])) <= 20
    assert lines and all(json.loads(line) for line in lines)   # the banner too
    assert json.loads(lines[0])["event"] == "listening"
    # One line for the endpoint, not one per request (the next is due 10 s later).
    assert len([line for line in lines if "upstream_connect_failed" in line]) == 1
