"""gRPC-Web translation pieces: base64 in parts (padding between messages), trailer frames,
content types."""

from __future__ import annotations

import base64
import struct

from hypothesis import given
from hypothesis import strategies as st

from edgeward.grpc.web import WEB, WEB_TEXT, WebCall, trailer_frame, web_content_type


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(st.lists(st.binary(max_size=40), max_size=5), st.lists(st.integers(0, 10**6), max_size=6))
def test_text_bodies_decode_whatever_the_parts(messages: list[bytes], cuts: list[int]) -> None:
    encoded = b"".join(base64.b64encode(m) for m in messages)  # each padded on its own
    call = WebCall(True, WEB_TEXT)
    parts = _split(encoded, cuts)
    out = b"".join(call.decode(p, False) for p in parts) + call.decode(b"", True)
    assert out == b"".join(messages)


@given(st.binary(max_size=200), st.lists(st.integers(0, 10**6), max_size=6))
def test_text_answers_encode_whatever_the_parts(data: bytes, cuts: list[int]) -> None:
    call = WebCall(True, WEB_TEXT)
    out = b"".join(call.encode(p, False) for p in _split(data, cuts)) + call.encode(b"", True)
    assert base64.b64decode(out) == data
    assert b"=" not in out[:-2]  # padding only at the very end


def test_trailer_frame() -> None:
    frame = trailer_frame([(b"grpc-status", b"0"), (b"Grpc-Message", b"ok")])
    block = b"grpc-status:0\r\ngrpc-message:ok\r\n"
    assert frame == struct.pack(">BI", 0x80, len(block)) + block


def test_content_types() -> None:
    assert web_content_type("application/grpc", WEB) == "application/grpc-web+proto"
    assert web_content_type("application/grpc+json", WEB_TEXT) == (
        "application/grpc-web-text+json")
