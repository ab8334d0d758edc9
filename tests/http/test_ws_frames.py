"""FrameCursor follows frame boundaries whatever the read sizes; control frames are per RFC 6455."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.http.ws_frames import (
    FrameCursor,
    close_frame,
    control_frame,
    frame_size,
    parse_close,
)


def frame(payload: bytes, *, opcode: int = 2, fin: bool = True, masked: bool = False) -> bytes:
    """A frame written the long way (independent of the code under test)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if masked else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if masked else 0) | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, (0x80 if masked else 0) | 127]) + n.to_bytes(8, "big")
    if masked:
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("masked", [False, True])
def test_frame_size_reads_every_length_form(n: int, masked: bool) -> None:
    f = frame(b"x" * n, masked=masked)
    assert frame_size(f, 0) == len(f)
    assert frame_size(f[:1], 0) == 0


def boundaries_by_feeding(stream: bytes, cuts: list[int]) -> list[int]:
    """Positions in `stream` where the cursor says a read ended on a frame boundary."""
    cursor = FrameCursor()
    seen = []
    pos = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        if cut <= pos:
            continue
        assert cursor.advance(stream[pos:cut]) == cut - pos
        pos = cut
        if cursor.at_boundary:
            seen.append(pos)
    return seen


def test_one_byte_at_a_time_finds_every_boundary() -> None:
    frames = [frame(b"a" * 3), frame(b"b" * 200, masked=True), frame(b""),
              frame(b"c" * 70000, opcode=1), frame(b"d", fin=False), frame(b"e", opcode=0)]
    stream = b"".join(frames)
    ends = []
    total = 0
    for f in frames:
        total += len(f)
        ends.append(total)
    seen = boundaries_by_feeding(stream, list(range(1, len(stream))))
    assert seen == ends


@given(st.lists(st.tuples(st.binary(max_size=300), st.booleans()), min_size=1, max_size=8),
       st.lists(st.integers(min_value=0, max_value=3000), max_size=12))
def test_any_split_of_reads_keeps_the_boundaries(parts: list[tuple[bytes, bool]],
                                                 cuts: list[int]) -> None:
    frames = [frame(p, masked=m) for p, m in parts]
    stream = b"".join(frames)
    ends = set()
    total = 0
    for f in frames:
        total += len(f)
        ends.add(total)
    for pos in boundaries_by_feeding(stream, [c for c in cuts if c < len(stream)]):
        assert pos in ends  # never a boundary that is not one
    cursor = FrameCursor()
    cursor.advance(stream)
    assert cursor.at_boundary


def test_stop_at_boundary_stops_where_the_frame_ends() -> None:
    first, second = frame(b"x" * 10), frame(b"y" * 5)
    cursor = FrameCursor()
    assert cursor.advance(first[:4]) == 4
    assert not cursor.at_boundary
    taken = cursor.advance(first[4:] + second, stop_at_boundary=True)
    assert taken == len(first) - 4
    assert cursor.at_boundary
    assert cursor.advance(second, stop_at_boundary=True) == 0  # already at one


def test_stop_at_boundary_with_a_header_split_across_reads() -> None:
    big = frame(b"z" * 300)  # 4-byte header
    cursor = FrameCursor()
    assert cursor.advance(big[:1]) == 1
    assert cursor.advance(big[1:3], stop_at_boundary=True) == 2  # no boundary in a header
    rest = big[3:] + frame(b"next")
    assert cursor.advance(rest, stop_at_boundary=True) == len(big) - 3
    assert cursor.at_boundary


def test_close_frame_toward_a_client_is_unmasked() -> None:
    f = close_frame(1001, "going away", masked=False)
    assert f[0] == 0x88 and f[1] & 0x80 == 0
    assert parse_close(f) == (1001, "going away")


def test_close_frame_toward_a_server_is_masked_with_a_fresh_key() -> None:
    a = close_frame(1001, "bye", masked=True)
    b = close_frame(1001, "bye", masked=True)
    assert a[1] & 0x80 and a[1] & 0x7F == 5
    assert parse_close(a) == parse_close(b) == (1001, "bye")
    assert a[2:6] != b[2:6] or a == b  # a random key per frame (equal by chance: 2**-32)
    assert frame_size(a, 0) == len(a)


def test_control_frames_are_bounded_at_125_bytes() -> None:
    with pytest.raises(ValueError):
        control_frame(0x9, b"x" * 126, masked=False)
    assert len(close_frame(1001, "r" * 500, masked=False)) == 2 + 125
