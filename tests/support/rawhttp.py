"""A blocking HTTP/1.1 client over a raw socket, for tests that must control every byte.

`RawConnection.send(bytes)` writes exactly what the test gives; `read_response()` parses one
response (interim 1xx responses are returned too, flagged), honouring Content-Length,
chunked (with trailers), no body for HEAD/204/304, and close-delimited bodies.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 10.0


class ConnectionClosed(Exception):
    """The peer closed (or reset) before a complete response arrived."""


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


class ResponseReader:
    """Parses HTTP/1.1 responses from `buf`, filled by `_fill` (a socket, or bytes in tests
    without sockets)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def _fill(self) -> None:
        raise NotImplementedError

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self) -> Response:
        line = self._line()
        version, status, *reason = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            h = self._line()
            if not h:
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        return Response(int(status), reason[0] if reason else "", version, headers)

    def read_response(self, *, head_request: bool = False, sink: Any = None) -> Response:
        """One response, interim ones included. `sink(bytes)` streams the body instead."""
        resp = self.read_head()
        if resp.status < 200 or resp.status in (204, 304) or head_request:
            return resp
        chunks: list[bytes] = []
        put = sink if sink is not None else chunks.append
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if te == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    break
                self._stream(size, put)
                if self._exact(2) != b"\r\n":
                    raise AssertionError("bad chunk terminator from the gateway")
            while True:
                t = self._line()
                if not t:
                    break
                name, _, value = t.decode("latin-1").partition(":")
                resp.trailers.append((name, value.strip()))
        elif cl is not None:
            self._stream(int(cl), put)
        else:
            while True:
                if self.buf:
                    put(bytes(self.buf))
                    self.buf.clear()
                try:
                    self._fill()
                except ConnectionClosed:
                    break
        resp.body = b"".join(chunks)
        return resp

    def _stream(self, n: int, put: Any) -> None:
        while n > 0:
            if not self.buf:
                self._fill()
            piece = bytes(self.buf[:n])
            del self.buf[: len(piece)]
            n -= len(piece)
            put(piece)

    def final_response(self, *, head_request: bool = False) -> tuple[list[int], Response]:
        """Skip interim responses; returns (their statuses, the final response)."""
        interim: list[int] = []
        while True:
            resp = self.read_response(head_request=head_request)
            if resp.status >= 200:
                return interim, resp
            interim.append(resp.status)


class RawConnection(ResponseReader):
    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_all(self, parts: Iterable[bytes]) -> None:
        for part in parts:
            self.sock.sendall(part)

    # reading -------------------------------------------------------------------------------
    def _fill(self) -> None:
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            raise ConnectionClosed("reset") from None
        if not data:
            raise ConnectionClosed("eof")
        self.buf += data

    def is_closed(self, wait: float = 2.0) -> bool:
        """True when the peer has closed: EOF or reset within `wait` seconds, nothing unread."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(DEFAULT_TIMEOUT)
        return data == b""


def exchange(port: int, raw: bytes, *, head_request: bool = False,
             timeout: float = DEFAULT_TIMEOUT) -> Response:
    """Send `raw` on a new connection and read one final response."""
    with RawConnection(port, timeout) as conn:
        conn.send(raw)
        return conn.final_response(head_request=head_request)[1]


def get(port: int, target: str, headers: Iterable[tuple[str, str]] = (),
        method: str = "GET", body: bytes = b"", host: str = "gw.test") -> Response:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{n}: {v}" for n, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    return exchange(port, raw, head_request=method == "HEAD")
