"""A real HTTP/1.1 origin for end-to-end tests: plain sockets, one thread per connection.

It records what each connection received (the first RECORD_LIMIT raw bytes and the total
count) and every request head it parsed, so a test can assert "the origin saw nothing of
it" or "this path was requested twice". It answers by path:

  /echo            JSON: method, target, headers (pairs, in order), body length and sha256,
                   request trailers
  /status/NNN      that status; no body for 1xx/204/304, else an empty body
  /chunked         a chunked response (three chunks) with trailers `x-checksum`, `x-count`
  /big?bytes=N     N bytes of `pattern_bytes()` in 64 KiB writes with Content-Length
  /slow?ms=N       waits N ms before the head, then answers as /echo
  /truncate        Content-Length 100, then 10 bytes and a close
  /close           answers with `Connection: close`, then closes
  /no-length       HTTP/1.1 200 without Content-Length; the body ends at close
  /hop-response    a response carrying hop-by-hop fields (Connection-named one included)
  /upload          reads a body of any size and framing (streaming, bounded memory) and
                   answers JSON {length, sha256}
  /close-quietly   answers normally (keep-alive, no `Connection: close`); then the connection
                   dies: with `?when=now` it closes at once, by default it reads the next
                   request head on it and closes without answering (the keep-alive race,
                   made deterministic)

Memory stays bounded for any body size: bodies are hashed as they stream.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

RECORD_LIMIT = 1 << 20  # raw bytes kept per connection; the count goes on beyond
BLOCK = 64 * 1024
LINE_LIMIT = 1 << 20  # longest request line or header line read (gateways may allow large heads)
_PATTERN_BLOCK = hashlib.sha256(b"edgeward").digest() * (BLOCK // 32)


def pattern_bytes(n: int) -> Iterator[bytes]:
    """The body /big sends: a fixed 64 KiB block repeated, cut at n bytes."""
    while n > 0:
        piece = _PATTERN_BLOCK if n >= BLOCK else _PATTERN_BLOCK[:n]
        n -= len(piece)
        yield piece


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for piece in pattern_bytes(n):
        h.update(piece)
    return h.hexdigest()


class ConnectionGone(Exception):
    pass


@dataclass
class RequestRecord:
    conn_id: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    path: str = ""

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


@dataclass
class ConnectionRecord:
    conn_id: int
    peer: tuple[str, int]
    raw: bytearray = field(default_factory=bytearray)
    received: int = 0
    closed: bool = False


class _Reader:
    """Buffered reads from one socket, recording raw bytes into its ConnectionRecord."""

    def __init__(self, sock: socket.socket, record: ConnectionRecord, lock: threading.Lock):
        self.sock = sock
        self.record = record
        self.lock = lock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(BLOCK)
        if not data:
            raise ConnectionGone
        with self.lock:
            rec = self.record
            rec.received += len(data)
            room = RECORD_LIMIT - len(rec.raw)
            if room > 0:
                rec.raw += data[:room]
        self.buf += data

    def readline(self, limit: int = LINE_LIMIT) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > limit:
                raise ConnectionGone
            self._fill()

    def read_some(self, n: int) -> bytes:
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Origin:
    """`with Origin() as o:` serves on 127.0.0.1:o.port until the block ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[ConnectionRecord] = []
        self.requests: list[RequestRecord] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self.port: int = self._listener.getsockname()[1]
        self._socks: set[socket.socket] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"origin-{self.port}")

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> Origin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # what tests assert on ------------------------------------------------------------------
    def bytes_received(self) -> int:
        with self.lock:
            return sum(c.received for c in self.connections)

    def mark(self) -> tuple[int, int, int]:
        """(connections, requests, bytes) so far: compare with a later mark."""
        with self.lock:
            return (len(self.connections), len(self.requests),
                    sum(c.received for c in self.connections))

    def requests_since(self, mark: tuple[int, int, int]) -> list[RequestRecord]:
        with self.lock:
            return list(self.requests[mark[1]:])

    def path_counts(self, mark: tuple[int, int, int] = (0, 0, 0)) -> Counter[str]:
        return Counter(r.path for r in self.requests_since(mark))

    def open_connections(self) -> int:
        with self.lock:
            return sum(1 for c in self.connections if not c.closed)

    # serving ---------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            with self.lock:
                record = ConnectionRecord(len(self.connections), peer)
                self.connections.append(record)
                self._socks.add(sock)
            threading.Thread(target=self._serve, args=(sock, record), daemon=True).start()

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _Reader(sock, record, self.lock)
        try:
            while self._one_request(sock, reader, record):
                pass
        except (ConnectionGone, OSError):
            pass
        finally:
            with self.lock:
                record.closed = True
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _one_request(self, sock: socket.socket, reader: _Reader, rec: ConnectionRecord) -> bool:
        """Serve one request; False when the connection must close."""
        line = reader.readline()
        while line in (b"\r\n", b"\n"):
            line = reader.readline()
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            h = reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        url = urlsplit(target)
        req = RequestRecord(rec.conn_id, method, target, headers, url.path)
        with self.lock:
            self.requests.append(req)
        lower = {n.lower(): v for n, v in headers}
        keep = version == "HTTP/1.1" and "close" not in lower.get("connection", "").lower()
        length, digest, trailers = self._read_body(reader, lower)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        head_only = method == "HEAD"
        path = url.path

        def echo() -> bytes:
            return json.dumps({
                "method": method, "target": target, "headers": headers,
                "body_length": length, "body_sha256": digest, "trailers": trailers,
            }).encode()

        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            if status in (204, 304) or status < 200:
                self._send(sock, f"HTTP/1.1 {status} X\r\nx-origin: yes\r\n\r\n".encode())
            else:
                self._respond(sock, status, b"", head_only)
            return keep
        if path == "/slow":
            time.sleep(int(query.get("ms", "1000")) / 1000)
            self._respond(sock, 200, echo(), head_only)
            return keep
        if path == "/chunked":
            head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                    b"trailer: x-checksum, x-count\r\ntransfer-encoding: chunked\r\n\r\n")
            if head_only:
                self._send(sock, head)
                return keep
            self._send(sock, head)
            for part in (b"alpha-", b"beta-", b"gamma"):
                self._send(sock, b"%x\r\n%b\r\n" % (len(part), part))
            self._send(sock, b"0\r\nx-checksum: abc123\r\nx-count: 3\r\n\r\n")
            return keep
        if path == "/big":
            n = int(query.get("bytes", "0"))
            self._send(sock, b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                             b"content-length: %d\r\n\r\n" % n)
            if not head_only:
                for piece in pattern_bytes(n):
                    sock.sendall(piece)
            return keep
        if path == "/truncate":
            self._send(sock, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
            return False
        if path == "/close":
            body = echo()
            self._send(sock, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%b"
                             % (len(body), body))
            return False
        if path == "/no-length":
            self._send(sock, b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
            if not head_only:
                self._send(sock, b"body until close; " * 100)
            return False
        if path == "/hop-response":
            body = b"hop"
            self._send(sock, b"HTTP/1.1 200 OK\r\nconnection: x-internal\r\n"
                             b"x-internal: secret\r\nkeep-alive: timeout=5\r\n"
                             b"proxy-authenticate: Basic\r\nx-public: 1\r\n"
                             b"content-length: 3\r\n\r\n" + (b"" if head_only else body))
            return keep
        if path == "/upload":
            body = json.dumps({"length": length, "sha256": digest}).encode()
            self._respond(sock, 200, body, head_only)
            return keep
        if path == "/close-quietly":
            self._respond(sock, 200, echo(), head_only)
            if query.get("when") == "now":
                return False
            self._die_on_next_request(sock, reader, rec)
            return False
        self._respond(sock, 200, echo(), head_only)  # /echo and any other path
        return keep

    def _die_on_next_request(self, sock: socket.socket, reader: _Reader,
                             rec: ConnectionRecord) -> None:
        """Read the next request head on this connection, record it, close without answer."""
        line = reader.readline()
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            h = reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        with self.lock:
            self.requests.append(
                RequestRecord(rec.conn_id, method, target, headers, urlsplit(target).path))
        # RST rather than FIN: what an origin that timed the connection out looks like.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _read_body(self, reader: _Reader, lower: dict[str, str]
                   ) -> tuple[int, str, list[tuple[str, str]]]:
        h = hashlib.sha256()
        length = 0
        trailers: list[tuple[str, str]] = []
        if lower.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(reader.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    break
                left = size
                while left:
                    piece = reader.read_some(min(left, BLOCK))
                    h.update(piece)
                    left -= len(piece)
                    length += len(piece)
                reader.readline()  # CRLF after the chunk
            while True:
                t = reader.readline()
                if t in (b"\r\n", b"\n"):
                    break
                name, _, value = t.decode("latin-1").partition(":")
                trailers.append((name, value.strip()))
        elif "content-length" in lower:
            left = int(lower["content-length"])
            while left:
                piece = reader.read_some(min(left, BLOCK))
                h.update(piece)
                left -= len(piece)
                length += len(piece)
        return length, h.hexdigest(), trailers

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)

    def _respond(self, sock: socket.socket, status: int, body: bytes, head_only: bool) -> None:
        head = (b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nx-origin: yes\r\n\r\n" % (status, len(body)))
        self._send(sock, head if head_only else head + body)
