"""gRPC statuses of the gateway's errors, grpc-timeout parsing and formatting, grpc-message."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.grpc import status as g
from edgeward.http.errors import ERRORS


def test_the_issue_s_statuses() -> None:
    assert g.status_for("no_healthy_upstream", 503) == g.UNAVAILABLE
    assert g.status_for("circuit_open", 503) == g.UNAVAILABLE
    assert g.status_for("rate_limited", 429) == g.RESOURCE_EXHAUSTED
    assert g.status_for("upstream_timeout", 504) == g.DEADLINE_EXCEEDED
    assert g.status_for("unauthenticated", 401) == g.UNAUTHENTICATED
    assert g.status_for("forbidden", 403) == g.PERMISSION_DENIED
    assert g.status_for("route_not_found", 404) == g.UNIMPLEMENTED


def test_every_catalogue_error_has_a_failing_status() -> None:
    for code, entry in ERRORS.items():
        assert g.status_for(code, entry.status) != g.OK, code


def test_a_filter_s_own_reply_maps_by_http_status() -> None:
    assert g.status_for("my_filter_code", 401) == g.UNAUTHENTICATED
    assert g.status_for(None, 418) == g.UNKNOWN
    assert g.status_for(None, 204) == g.OK


def test_timeouts() -> None:
    assert g.parse_timeout(b"100m") == 0.1
    assert g.parse_timeout(b"2S") == 2.0
    assert g.parse_timeout(b"1H") == 3600.0
    assert g.parse_timeout(b"5u") == pytest.approx(5e-6)
    for bad in (b"", b"m", b"123456789S", b"10x", b"-1S", b"1.5S"):
        assert g.parse_timeout(bad) is None


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_formatted_timeouts_parse_back_never_shorter(seconds: float) -> None:
    value = g.format_timeout(seconds)
    parsed = g.parse_timeout(value)
    assert parsed is not None
    assert parsed >= min(seconds, 99999999 * 3600) - 1e-9
    assert parsed >= 0.001  # time left is never sent as none


@given(st.text(max_size=50))
def test_messages_are_percent_encoded_ascii(text: str) -> None:
    encoded = g.encode_message(text)
    assert all(0x20 <= b < 0x7F for b in encoded)
    assert unquote(encoded.decode()) == text


def test_trailers_only_head() -> None:
    fields = g.trailers_only(b"application/grpc-web-text", g.UNAVAILABLE, "circuit_open",
                             "open 100%", [(b"retry-after", b"1")])
    assert fields == [(b"content-type", b"application/grpc-web-text+proto"),
                      (b"grpc-status", b"14"), (b"grpc-message", b"circuit_open: open 100%25"),
                      (b"retry-after", b"1")]
    assert g.reply_content_type(b"application/grpc+proto") == b"application/grpc"


def test_status_of_trailers() -> None:
    assert g.status_of([(b"x", b"1"), (b"Grpc-Status", b"3")]) == b"3"
    assert g.status_of(None) is None
