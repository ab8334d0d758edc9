"""A hand-framed gRPC-Web (and plain gRPC) client over HTTP/1.1 raw sockets, for end-to-end
tests: length-prefixed messages in, the answer's messages and trailers (from the trailer
frame, the HTTP trailers or a trailers-only head) out."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from support.rawhttp import RawConnection

WEB = "application/grpc-web+proto"
WEB_TEXT = "application/grpc-web-text+proto"
GRPC = "application/grpc"


def frame(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


def unframe(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Messages and the trailer frame's fields of a gRPC-Web body."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    at = 0
    while at < len(body):
        flag, size = struct.unpack(">BI", body[at:at + 5])
        payload = body[at + 5:at + 5 + size]
        assert len(payload) == size, "truncated gRPC-Web frame"
        at += 5 + size
        if flag & 0x80:
            for line in payload.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    trailers[name.strip()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


@dataclass
class Answer:
    http_status: int
    headers: list[tuple[str, str]]
    messages: list[bytes]
    trailers: dict[str, str] = field(default_factory=dict)
    trailer_frames: int = 0  # trailer frames in the body (gRPC-Web)

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    @property
    def status(self) -> str | None:
        """grpc-status: from the trailers, else from the head (trailers-only)."""
        return self.trailers.get("grpc-status") or self.header("grpc-status")

    @property
    def message(self) -> str:
        return self.trailers.get("grpc-message") or self.header("grpc-message") or ""


def call(port: int, path: str, messages: Iterable[bytes], *, content_type: str = WEB,
         headers: Iterable[tuple[str, str]] = (), timeout: float = 20.0,
         chunked: bool = False) -> Answer:
    """One call. `chunked`: each message in a chunk of its own (a client stream), else one
    Content-Length body."""
    text = content_type.startswith("application/grpc-web-text")
    parts = [frame(m) for m in messages]
    if text:
        parts = [base64.b64encode(p) for p in parts]  # each message padded on its own
    lines = [f"POST {path} HTTP/1.1", "Host: gw.test", f"Content-Type: {content_type}"]
    if content_type.startswith("application/grpc-web"):
        lines += ["X-Grpc-Web: 1", f"Accept: {content_type}"]
    else:
        lines.append("TE: trailers")
    lines += [f"{n}: {v}" for n, v in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        body = b"".join(parts)
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with RawConnection(port, timeout) as conn:
        conn.send(raw)
        resp = conn.final_response()[1]
    payload = resp.body
    if text and payload:
        payload = base64.b64decode(payload)
    if content_type.startswith("application/grpc-web"):
        got, trailers = unframe(payload)
        frames = 1 if trailers else 0
    else:
        got, _ = unframe(payload)
        trailers = dict(resp.trailers)
        frames = 0
    return Answer(resp.status, resp.headers, got, trailers, frames)
