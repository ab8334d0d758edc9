"""HTTP/1.1 serialisation shared by both codecs: heads with their framing, and relayed heads.

A head that can be relayed (see `edgeward.http.message`) is written as received plus the fields
added since; any other is written from its fields. Framing is always the codec's: a message's
`body_length` decides Content-Length or chunked here, never a field a filter set.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from edgeward.http.errors import status_line
from edgeward.http.fields import write_fields
from edgeward.http.message import NO_BODY, STREAMED, RequestHead

# Write buffer limits for both sides: above HIGH the other side stops reading, below LOW
# it resumes. 64 KiB matches asyncio's own default high-water mark.
WRITE_HIGH: Final = 64 * 1024
WRITE_LOW: Final = 16 * 1024

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_METHOD_BYTES: Final = {m: m.encode() for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")}
_NO_CONTENT: Final = frozenset({204, 304})


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Small writes leave at once: no Nagle delay between a head and its body."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def request_bytes(head: RequestHead) -> bytes:
    """The upstream request head: request line, fields, framing, blank line."""
    headers = head.headers
    length = head.body_length
    if head.upgrade is not None:
        end = b"connection: upgrade\r\nupgrade: " + head.upgrade + b"\r\n\r\n"
    elif length == NO_BODY:
        # Some origins answer 411 to a POST without a length.
        end = b"content-length: 0\r\n\r\n" if head.method in _BODY_METHODS else b"\r\n"
    elif length == STREAMED:
        end = b"transfer-encoding: chunked\r\n\r\n"
    else:
        end = b"content-length: %d\r\n\r\n" % length
    relayed = headers.relayed()
    if relayed is not None:
        return relayed + end  # the usual case: the head as received, plus the gateway's fields
    method = _METHOD_BYTES.get(head.method) or head.method.encode("ascii")
    parts = [method, b" ", head.target, b" HTTP/1.1\r\n"]
    write_fields(parts, headers.fields)
    parts.append(end)
    return b"".join(parts)


def framing_line(status: int, body_length: int, head_only: bool) -> bytes:
    """A response's status line plus its Content-Length line when it has one (a body of
    unknown length gets chunked framing from the caller, which knows the client's version)."""
    line = status_line(status)
    if body_length > 0:
        return line + b"content-length: %d\r\n" % body_length
    if (body_length == NO_BODY and not head_only and status >= 200
            and status not in _NO_CONTENT):
        return line + b"content-length: 0\r\n"
    return line


def chunk_end(trailers: list[tuple[bytes, bytes]] | None) -> bytes:
    """The last chunk of a chunked body, with its trailer fields."""
    if not trailers:
        return b"0\r\n\r\n"
    parts = [b"0\r\n"]
    write_fields(parts, trailers)
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class Field:
    """A header line to drop from a relayed head: its name as sent, and where it would start
    and how long it would be (from the first header line) if written `name: value\\r\\n`."""

    __slots__ = ("name", "at", "size")

    def __init__(self, name: bytes, at: int, size: int) -> None:
        self.name = name
        self.at = at
        self.size = size


def drop_lines(head: bytes, fields: list[Field], fields_len: int) -> bytes:
    """`head` (status or request line, then header lines) without the lines of `fields`.

    Peers almost always write `name: value`, so each line is first looked for where that
    spelling puts it, and cut there if it is a whole line of that name: it starts a line,
    its name and colon are there, and a CRLF ends it at that length (a line written any
    other way differs by at most one space, never by a whole line). Else the lines still
    left go by name, as `drop_named` does for any header.
    """
    first = len(head) - fields_len  # where the header lines start, if all are canonical
    i = len(fields) - 1
    while i >= 0:  # from the last, so the earlier positions stay valid
        f = fields[i]
        pos = first + f.at
        end = pos + f.size
        name = f.name
        if (pos >= 2 and end <= len(head) and head[pos - 2] == 13 and head[pos - 1] == 10
                and head[end - 2] == 13 and head[end - 1] == 10
                and head[pos:pos + len(name) + 1] == name + b":"):
            head = head[:pos] if end == len(head) else head[:pos] + head[end:]
        else:
            return drop_named(head, frozenset(f.name.lower() for f in fields[:i + 1]))
        i -= 1
    return head


def drop_named(head: bytes, names: frozenset[bytes]) -> bytes:
    """`head` without the lines of headers whose lower-case names are in `names`."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line.partition(b":")[0].lower() not in names]
    return b"\r\n".join([lines[0], *kept])
