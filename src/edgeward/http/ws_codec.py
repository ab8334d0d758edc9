"""RFC 6455 messages, server side, sans I/O: client bytes in, messages and control frames out;
messages in, server frames out. For WebSocket connections the gateway ends itself
(`edgeward.http.ws_endpoint`); tunnels only follow frame boundaries (`ws_frames`).

Rules the decoder enforces (each failure is a close code, RFC 6455 §7.4.1):
- every client frame is masked (§5.1), else 1002;
- RSV1-3 are 0 (no extension is negotiated, §5.2), the opcode is known (§5.2), else 1002;
- control frames (close, ping, pong) carry ≤ 125 bytes and are not fragmented (§5.5), else 1002;
- a continuation frame continues a message, and a new text/binary frame does not interrupt
  one (§5.4), else 1002; control frames may come between fragments;
- text messages are UTF-8 (§8.1), else 1007 (checked per fragment, so a bad byte fails fast);
- a close frame's payload is empty, or a valid code (§7.4: 1000-1003, 1007-1014, 3000-4999)
  and a UTF-8 reason, else 1002 (1007 for the reason);
- a message larger than `max_message` bytes (all fragments together) is 1009; the check is
  made on each frame's declared length, before its payload is buffered.

Unmasking XORs the payload as one big integer (a C loop inside `int`), not byte by byte.
After a close frame or an error nothing more is decoded.
"""

from __future__ import annotations

import codecs
from typing import Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_NO_STATUS: Final = 1005   # §7.1.5: a close frame without a code (never sent)
CLOSE_ABNORMAL: Final = 1006    # §7.1.5: the connection dropped without a close frame
CLOSE_INVALID_DATA: Final = 1007
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011

MAX_CONTROL_PAYLOAD: Final = 125  # §5.5
# §7.4.1 and the IANA registry (1012-1014 were registered after RFC 6455): codes a peer may
# send; 3000-4999 are for libraries and applications.
_VALID_CLOSE: Final = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                 1013, 1014})
_FIN: Final = 0x80
_RSV: Final = 0x70
_MASK: Final = 0x80
_KNOWN_OPS: Final = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING,
                               OP_PONG})

Event = tuple[int, "str | bytes"]  # (opcode, message): OP_TEXT str, others bytes


def unmask(payload: bytes | bytearray, key: bytes) -> bytes:
    """`payload` XOR the repeated 4-byte `key` (§5.3), as one integer operation."""
    n = len(payload)
    if n == 0:
        return b""
    mask = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little")


def valid_close_code(code: int) -> bool:
    return code in _VALID_CLOSE or 3000 <= code <= 4999


class ProtocolError(Exception):
    """The client broke RFC 6455: the connection fails with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def close_payload(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a received close frame's payload; ProtocolError when invalid."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "a close payload of one byte")
    code = (payload[0] << 8) | payload[1]
    if not valid_close_code(code):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason


class Decoder:
    """A client's frames, from reads of any size, to whole messages and control frames.

    `feed(data)` returns the events the bytes complete: (OP_TEXT, str), (OP_BINARY, bytes),
    (OP_PING, payload), (OP_PONG, payload), (OP_CLOSE, payload). A protocol error ends
    decoding: `feed` returns the events before it and sets `error` (the close code and why).
    """

    __slots__ = ("max_message", "buf", "parts", "chars", "size", "opcode", "text", "error",
                 "done")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.buf: bytes | bytearray = b""  # bytes not yet decoded (a frame begun)
        self.parts: list[bytes] = []      # the fragments of a binary message in progress
        self.chars: list[str] = []        # ... of a text message, decoded
        self.size = 0                     # its bytes so far
        self.opcode = 0                   # its opcode (0: no message in progress)
        self.text: codecs.IncrementalDecoder | None = None  # UTF-8 check of a text in parts
        self.error: ProtocolError | None = None
        self.done = False                 # a close frame or an error ended decoding

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.done:
            return events
        buf = self.buf
        if buf:
            if isinstance(buf, bytes):
                buf = bytearray(buf)
            buf += data
        else:
            buf = data  # the usual case: parse the read itself, no copy
        pos = 0
        try:
            while True:
                used = self._frame(buf, pos, events)
                if used == 0:
                    break
                pos += used
                if self.done:
                    break
        except ProtocolError as exc:
            self.error = exc
            self.done = True
            self.buf = b""
            return events
        if pos == len(buf):
            self.buf = b""
        elif isinstance(buf, bytearray):
            del buf[:pos]
            self.buf = buf
        else:
            self.buf = buf[pos:]
        return events

    def _frame(self, buf: bytes | bytearray, at: int, events: list[Event]) -> int:
        """Decode the frame at `buf[at]` into `events`; its size, or 0 if incomplete."""
        n = len(buf) - at
        if n < 2:
            return 0
        first, second = buf[at], buf[at + 1]
        opcode = first & 0x0F
        fin = first & _FIN
        if first & _RSV:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode not in _KNOWN_OPS:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if not second & _MASK:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = second & 0x7F
        head = 6
        if opcode >= OP_CLOSE:
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
            if not fin:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
        else:
            if length == 126:
                head = 8
                if n < 4:
                    return 0
                length = (buf[at + 2] << 8) | buf[at + 3]
            elif length == 127:
                head = 14
                if n < 10:
                    return 0
                length = int.from_bytes(buf[at + 2:at + 10], "big")
            self._check_size(opcode, length)
        if n < head + length:
            return 0
        key = bytes(buf[at + head - 4:at + head])
        payload = unmask(buf[at + head:at + head + length], key)
        self._deliver(opcode, bool(fin), payload, events)
        return head + length

    def _check_size(self, opcode: int, length: int) -> None:
        if opcode == OP_CONTINUATION:
            if not self.opcode:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            length += self.size
        elif self.opcode:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
        if length > self.max_message:
            raise ProtocolError(CLOSE_TOO_BIG, f"message over {self.max_message} bytes")

    def _deliver(self, opcode: int, fin: bool, payload: bytes, events: list[Event]) -> None:
        if opcode >= OP_CLOSE:
            if opcode == OP_CLOSE:
                close_payload(payload)  # raises when invalid
                self.done = True
            events.append((opcode, payload))
            return
        if opcode != OP_CONTINUATION:
            if fin:  # the usual case: a whole message in one frame
                events.append((opcode, _text(payload) if opcode == OP_TEXT else payload))
                return
            self.opcode = opcode
            if opcode == OP_TEXT:
                self.text = codecs.getincrementaldecoder("utf-8")()
        self.size += len(payload)
        decoder = self.text
        if decoder is not None:
            try:
                self.chars.append(decoder.decode(payload, fin))
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_INVALID_DATA, "text is not UTF-8") from None
        else:
            self.parts.append(payload)
        if fin:
            if decoder is not None:
                events.append((OP_TEXT, "".join(self.chars)))
                self.chars = []
                self.text = None
            else:
                events.append((OP_BINARY, b"".join(self.parts)))
                self.parts = []
            self.size = 0
            self.opcode = 0

    def __repr__(self) -> str:
        return (f"<Decoder buffered={len(self.buf)} message={self.opcode} size={self.size} "
                f"done={self.done}>")


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CLOSE_INVALID_DATA, "text is not UTF-8") from None


def frame(opcode: int, payload: bytes, fin: bool = True, mask_key: bytes | None = None
          ) -> bytes:
    """One frame: unmasked, as a server sends (§5.1); with `mask_key`, masked as a client's."""
    n = len(payload)
    first = (_FIN if fin else 0) | opcode
    bit = _MASK if mask_key is not None else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if mask_key is not None:
        return head + mask_key + unmask(payload, mask_key)
    return head + payload


def message_frame(message: str | bytes) -> bytes:
    """A whole message in one server frame: str as text, bytes as binary."""
    if isinstance(message, str):
        return frame(OP_TEXT, message.encode("utf-8"))
    return frame(OP_BINARY, message)


def close_frame(code: int, reason: str) -> bytes:
    """The server's close frame; the reason is cut to fit a control frame (at a character)."""
    data = reason.encode("utf-8")
    if len(data) > MAX_CONTROL_PAYLOAD - 2:
        data = data[:MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
    return frame(OP_CLOSE, code.to_bytes(2, "big") + data)
