"""WebSocket frame boundaries and the control frames the gateway writes itself (RFC 6455 §5).

A tunnel relays bytes without parsing messages, but it must know where each frame ends: a
close frame the gateway sends (on shutdown or idle timeout) may only go between two frames,
never inside one. `FrameCursor` follows the frame headers of one direction of a tunnel and
nothing else (no unmasking, no payload copies): per read it reads one header per frame that
begins in it, so a large message costs one header per frame, not per byte.

A frame header is 2 bytes, then 2 or 8 bytes of extended length (payload length 126 or 127),
then a 4-byte masking key when the MASK bit is set; the payload follows.

No I/O here: the tunnel feeds reads in and asks where a frame ends.
"""

from __future__ import annotations

import os
from typing import Final

# RFC 6455 §7.4.1 status codes the gateway sends.
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001

_OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
_FIN: Final = 0x80
_MASK_BIT: Final = 0x80
_MAX_HEADER: Final = 14  # 2 + 8 (64-bit length) + 4 (masking key)
_MAX_CONTROL_PAYLOAD: Final = 125  # §5.5: control frames carry at most 125 bytes


def frame_size(buf: bytes, at: int) -> int:
    """The whole size (header and payload) of the frame whose header starts at `buf[at]`,
    or 0 when the header is not complete in `buf`."""
    n = len(buf) - at
    if n < 2:
        return 0
    second = buf[at + 1]
    length = second & 0x7F
    mask = 4 if second & _MASK_BIT else 0
    if length < 126:
        head = 2 + mask
    elif length == 126:
        head = 4 + mask
        if n < 4:
            return 0
        length = (buf[at + 2] << 8) | buf[at + 3]
    else:
        head = 10 + mask
        if n < 10:
            return 0
        length = int.from_bytes(buf[at + 2:at + 10], "big")
    if n < head:
        return 0
    return head + length


class FrameCursor:
    """Where the frames of one direction of a tunnel begin and end."""

    __slots__ = ("remaining", "partial")

    def __init__(self) -> None:
        self.remaining = 0    # bytes of the current frame still to come (0: at a boundary)
        self.partial = b""    # the start of a header that did not arrive whole

    @property
    def at_boundary(self) -> bool:
        """The bytes relayed so far end exactly where a frame ends."""
        return self.remaining == 0 and not self.partial

    def advance(self, data: bytes, stop_at_boundary: bool = False) -> int:
        """Follow `data`; returns how many of its bytes were taken: all of them, or with
        `stop_at_boundary` up to the first frame boundary reached (0 when already at one)."""
        n = len(data)
        remaining = self.remaining
        if remaining >= n and not self.partial:
            self.remaining = remaining - n  # the usual case: inside one frame's payload
            return n
        pos = remaining
        self.remaining = 0
        if self.partial:
            pos = self._complete_header(data)
            if pos < 0:
                return n  # still not a whole header
            if pos >= n:
                self.remaining = pos - n
                return n
        while pos < n:
            if stop_at_boundary:
                return pos
            size = frame_size(data, pos)
            if size == 0:
                self.partial = data[pos:]
                return n
            pos += size
            if pos > n:
                self.remaining = pos - n
                return n
        return n

    def _complete_header(self, data: bytes) -> int:
        """With the header begun in an earlier read: where its frame ends in `data`, or -1
        when even `data` does not complete the header."""
        held = self.partial
        joined = held + data[:_MAX_HEADER]
        size = frame_size(joined, 0)
        if size == 0:
            self.partial = held + data
            return -1
        self.partial = b""
        return size - len(held)

    def __repr__(self) -> str:
        return f"<FrameCursor remaining={self.remaining} partial={len(self.partial)}>"


def close_frame(code: int, reason: str, masked: bool) -> bytes:
    """A close frame with `code` and `reason` (masked: as a client sends it, §5.3)."""
    payload = code.to_bytes(2, "big") + reason.encode()[:_MAX_CONTROL_PAYLOAD - 2]
    return control_frame(_OP_CLOSE, payload, masked)


def control_frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """A single-frame control message (FIN set); masked with a fresh random key when sent
    toward a server, as §5.3 requires of clients."""
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError("a control frame carries at most 125 bytes")
    first = bytes((_FIN | opcode,))
    if not masked:
        return first + bytes((len(payload),)) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return first + bytes((_MASK_BIT | len(payload),)) + key + body


def parse_close(frame: bytes) -> tuple[int, str] | None:
    """(code, reason) of a whole close frame (masked or not); None for another frame.
    For tests and tools: the tunnel itself never reads payloads."""
    if len(frame) < 2 or frame[0] & 0x0F != _OP_CLOSE:
        return None
    length = frame[1] & 0x7F
    at = 2
    payload = frame[at + 4:at + 4 + length] if frame[1] & _MASK_BIT else frame[at:at + length]
    if frame[1] & _MASK_BIT:
        key = frame[at:at + 4]
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    if len(payload) < 2:
        return (1005, "")  # §7.1.5: no status code present
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
