"""proxy/connect_failures.py: one warning per endpoint at once, then at most one per period
with the count it stands for; reasons in the OS's words."""

from __future__ import annotations

import errno
import logging

import pytest

from edgeward.proxy.connect_failures import ConnectFailure, ConnectFailureLog, reason_of

REFUSED = ConnectFailure("10.0.0.1:8000", "connection refused")


def test_first_failure_is_due_at_once_then_one_report_per_period() -> None:
    cf = ConnectFailureLog(every=10.0)
    cf.record("orders", REFUSED)
    assert cf.due(100.0) == [("orders", "10.0.0.1:8000", "connection refused", 1)]
    for _ in range(5):
        cf.record("orders", REFUSED)
    assert cf.due(105.0) == []                      # within the period: held
    assert cf.due(110.0) == [("orders", "10.0.0.1:8000", "connection refused", 5)]
    assert cf.due(125.0) == []                      # quiet for a whole period: forgotten
    cf.record("orders", REFUSED)
    assert cf.due(126.0) == [("orders", "10.0.0.1:8000", "connection refused", 1)]


def test_endpoints_are_reported_apart() -> None:
    cf = ConnectFailureLog()
    cf.record("orders", REFUSED)
    cf.record("orders", ConnectFailure("10.0.0.2:8000", "timed out"))
    cf.record("users", REFUSED)
    assert sorted(cf.due(0.0)) == [
        ("orders", "10.0.0.1:8000", "connection refused", 1),
        ("orders", "10.0.0.2:8000", "timed out", 1),
        ("users", "10.0.0.1:8000", "connection refused", 1)]


def test_reasons_are_words_not_reprs() -> None:
    assert reason_of(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "connection refused"
    assert reason_of(TimeoutError()) == "timed out"
    assert reason_of(OSError(errno.EHOSTUNREACH, "x")) == "no route to host"


def test_flush_logs_one_structured_warning(caplog: pytest.LogCaptureFixture) -> None:
    cf = ConnectFailureLog()
    for _ in range(3):
        cf.record("orders", REFUSED)
    with caplog.at_level(logging.WARNING, logger="edgeward.proxy"):
        cf.flush(1.0)
    (record,) = caplog.records
    assert record.getMessage() == (
        "upstream orders: cannot connect to 10.0.0.1:8000: connection refused (3 failures)")
    assert record.fields == {"event": "upstream_connect_failed", "upstream": "orders",  # type: ignore[attr-defined]
                             "endpoint": "10.0.0.1:8000", "reason": "connection refused",
                             "failures": 3}
