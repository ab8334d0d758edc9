"""The gRPC health check's messages, written and read by hand."""

from __future__ import annotations

import struct

from edgeward.grpc.health import request_message, serving_status


def test_request_message() -> None:
    assert request_message("") == b"\x00\x00\x00\x00\x00"
    assert request_message("pkg.Svc") == b"\x00\x00\x00\x00\x09\x0a\x07pkg.Svc"


def test_serving_status() -> None:
    assert serving_status(b"\x00\x00\x00\x00\x02\x08\x01") == 1
    assert serving_status(b"\x00\x00\x00\x00\x02\x08\x02") == 2
    assert serving_status(b"\x00\x00\x00\x00\x00") == 0  # the field absent: UNKNOWN
    assert serving_status(b"\x00\x00\x00\x00\x05") is None  # truncated
    assert serving_status(b"\x01\x00\x00\x00\x02\x08\x01") is None  # compressed
    unknown_field = b"\x12\x01x\x08\x01"
    assert serving_status(struct.pack(">BI", 0, len(unknown_field)) + unknown_field) == 1
