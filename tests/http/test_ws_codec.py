"""The server side of RFC 6455, sans I/O: any message split into any frames and any reads
decodes to the same messages; every rule of the decoder has a close code."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.http.ws_codec import (
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Decoder,
    Event,
    ProtocolError,
    close_frame,
    close_payload,
    frame,
    message_frame,
    unmask,
)

KEY = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes, fin: bool = True, key: bytes = KEY,
                 first_bits: int = 0) -> bytes:
    """A masked client frame written the long way (independent of `frame`)."""
    n = len(payload)
    first = (0x80 if fin else 0) | first_bits | opcode
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def fragments(message: str | bytes, cuts: list[int]) -> list[bytes]:
    """`message` as frames cut at `cuts` (offsets into its bytes)."""
    data = message.encode() if isinstance(message, str) else message
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in zip(points, points[1:], strict=False)] or [b""]
    opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
    return [client_frame(opcode if i == 0 else OP_CONTINUATION, piece,
                         fin=i == len(pieces) - 1, key=os.urandom(4))
            for i, piece in enumerate(pieces)]


def feed_in_reads(decoder: Decoder, wire: bytes, cuts: list[int]) -> list[Event]:
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    events: list[Event] = []
    for a, b in zip(points, points[1:], strict=False):
        events += decoder.feed(wire[a:b])
    return events


messages = st.one_of(st.text(max_size=300), st.binary(max_size=3000))
cut_lists = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(messages, cut_lists), min_size=1, max_size=5), cut_lists,
       st.binary(max_size=125))
def test_any_fragments_and_reads_decode_to_the_same_messages(
        sent: list[tuple[str | bytes, list[int]]], reads: list[int], ping: bytes) -> None:
    frames = [f for m, cuts in sent for f in fragments(m, cuts)]
    # A ping after the first frame: between fragments when the first message has several
    # (control frames may interleave, §5.4).
    frames.insert(1, client_frame(OP_PING, ping))
    wire = b"".join(frames)
    decoder = Decoder(max_message=1 << 20)
    events = feed_in_reads(decoder, wire, reads)
    assert decoder.error is None
    assert (OP_PING, ping) in events
    got = [e for e in events if e[0] != OP_PING]
    assert got == [(OP_TEXT if isinstance(m, str) else OP_BINARY, m) for m, _ in sent]
    assert not decoder.buf


@given(st.binary(max_size=70_000), st.binary(min_size=4, max_size=4))
def test_unmask_is_its_own_inverse_and_matches_the_byte_loop(data: bytes, key: bytes) -> None:
    masked = unmask(data, key)
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert unmask(masked, key) == data


@given(messages)
def test_encode_then_decode_round_trips(message: str | bytes) -> None:
    server = message_frame(message)
    assert server[0] & 0x80 and server[1] & 0x80 == 0  # FIN; never masked (§5.1)
    opcode = server[0] & 0x0F
    data = message.encode() if isinstance(message, str) else message
    assert server.endswith(data)
    # The same frame masked as a client sends it decodes to the message.
    assert Decoder(1 << 20).feed(frame(opcode, data, mask_key=KEY)) == [(opcode, message)]


def test_large_lengths_use_the_16_and_64_bit_forms() -> None:
    for size, second in ((125, 125), (126, 126), (65535, 126), (65536, 127)):
        encoded = frame(OP_BINARY, b"x" * size)
        assert encoded[1] == second
        assert Decoder(1 << 20).feed(client_frame(OP_BINARY, b"x" * size)) == [
            (OP_BINARY, b"x" * size)]


def failure(*wire: bytes, max_message: int = 1 << 20) -> tuple[list[Event], int]:
    decoder = Decoder(max_message)
    events: list[Event] = []
    for part in wire:
        events += decoder.feed(part)
    assert decoder.error is not None
    return events, decoder.error.code


@pytest.mark.parametrize(("wire", "code"), [
    (frame(OP_TEXT, b"unmasked"), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_TEXT, b"x", first_bits=0x40), CLOSE_PROTOCOL_ERROR),  # RSV1
    (client_frame(0x3, b"x"), CLOSE_PROTOCOL_ERROR),  # reserved opcode
    (client_frame(0xB, b""), CLOSE_PROTOCOL_ERROR),   # reserved control opcode
    (client_frame(OP_PING, b"p" * 126), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_PING, b"p", fin=False), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_CONTINUATION, b"x"), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"),
     CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_TEXT, b"\xff\xfe"), CLOSE_INVALID_DATA),
    (client_frame(OP_TEXT, "κ".encode()[:1], fin=False), CLOSE_INVALID_DATA),
    (client_frame(OP_CLOSE, b"\x03"), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_CLOSE, (1005).to_bytes(2, "big")), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_CLOSE, (2999).to_bytes(2, "big")), CLOSE_PROTOCOL_ERROR),
    (client_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"\xff"), CLOSE_INVALID_DATA),
])
def test_each_rule_fails_with_its_close_code(wire: bytes, code: int) -> None:
    if wire[0] & 0x80 == 0 and code == CLOSE_INVALID_DATA:
        # An incomplete character at the end of a fragment is not yet an error ...
        decoder = Decoder(1 << 20)
        assert decoder.feed(wire) == [] and decoder.error is None
        # ... the next fragment that does not complete it is.
        assert failure(wire, client_frame(OP_CONTINUATION, b"a"))[1] == CLOSE_INVALID_DATA
        return
    assert failure(wire)[1] == code


def test_invalid_utf8_fails_fast_inside_a_fragmented_text() -> None:
    decoder = Decoder(1 << 20)
    decoder.feed(client_frame(OP_TEXT, b"ok", fin=False))
    assert decoder.error is None
    decoder.feed(client_frame(OP_CONTINUATION, b"\xc0\xaf", fin=False))
    assert decoder.error is not None and decoder.error.code == CLOSE_INVALID_DATA


def test_a_message_over_max_message_fails_on_its_declared_length() -> None:
    head_only = client_frame(OP_BINARY, b"x" * 2000)[:8]  # header + key, no payload yet
    assert failure(head_only, max_message=1000)[1] == CLOSE_TOO_BIG
    # Across fragments: the sum counts.
    events, code = failure(client_frame(OP_BINARY, b"x" * 600, fin=False),
                           client_frame(OP_CONTINUATION, b"x" * 600), max_message=1000)
    assert (events, code) == ([], CLOSE_TOO_BIG)


def test_events_before_an_error_are_kept_and_nothing_after_is_decoded() -> None:
    decoder = Decoder(1 << 20)
    events = decoder.feed(client_frame(OP_TEXT, b"first") + frame(OP_TEXT, b"unmasked"))
    assert events == [(OP_TEXT, "first")]
    assert decoder.error is not None
    assert decoder.feed(client_frame(OP_TEXT, b"later")) == []


def test_close_frames_and_their_payloads() -> None:
    decoder = Decoder(1 << 20)
    payload = (4000).to_bytes(2, "big") + "bye ✓".encode()
    events = decoder.feed(client_frame(OP_CLOSE, payload) + client_frame(OP_TEXT, b"late"))
    assert events == [(OP_CLOSE, payload)]  # nothing after a close is decoded
    assert close_payload(payload) == (4000, "bye ✓")
    assert close_payload(b"") == (CLOSE_NO_STATUS, "")
    with pytest.raises(ProtocolError):
        close_payload(b"\x03\xe8\xff")
    long = close_frame(1000, "é" * 100)  # cut to 125 bytes at a character boundary
    assert long[1] <= 125 and close_payload(long[2:])[0] == 1000


def test_pings_and_pongs_are_events() -> None:
    decoder = Decoder(1 << 20)
    assert decoder.feed(client_frame(OP_PING, b"a") + client_frame(OP_PONG, b"b")) == [
        (OP_PING, b"a"), (OP_PONG, b"b")]
