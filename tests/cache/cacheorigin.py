"""An origin for the cache tests: its answers' caching fields come from the query, it counts
the requests it got per path, answers conditional requests, and can be taken down.

  GET /any/path?cc=max-age%3D60&etag=v1&vary=x-lang&tag=a,b&ms=50&status=200&lm=DATE&size=N

answers 200 (or `status`) with `Cache-Control: cc`, `ETag: "etag"`, `Vary`, `Cache-Tag`,
`Last-Modified`, after `ms` milliseconds, with a body naming the path, the request's
x-lang and authorization fields and a per-path serial number (so a test can tell a stored
answer from a fresh one), or `size` bytes. A request whose If-None-Match matches the etag
gets 304. `down = True` answers 503 to everything.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class CacheOrigin:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.down = False
        self.sockets: list[socket.socket] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with origin.lock:
                    origin.sockets.append(self.connection)

            def do_GET(self) -> None:  # noqa: N802
                origin.answer(self)

            do_HEAD = do_GET

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                origin.answer(self)

            do_POST = do_DELETE = do_PUT

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> CacheOrigin:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Down for good: no listener, and every open connection cut."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def count(self, path: str) -> int:
        with self.lock:
            return self.counts[path]

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.counts[url.path] += 1
            serial = self.counts[url.path]
        if self.down:
            self._send(h, 503, [("cache-control", "no-store")], b"origin down")
            return
        if "ms" in q:
            time.sleep(int(q["ms"]) / 1000)
        fields = [("content-type", "text/plain")]
        etag = q.get("etag")
        if "cc" in q:
            fields.append(("cache-control", q["cc"]))
        if etag is not None:
            fields.append(("etag", f'"{etag}"'))
            if h.headers.get("if-none-match") == f'"{etag}"':
                with self.lock:
                    self.conditional[url.path] += 1
                self._send(h, 304, fields, b"")
                return
        for key, name in (("vary", "vary"), ("tag", "cache-tag"), ("lm", "last-modified"),
                          ("skey", "surrogate-key"), ("cookie", "set-cookie")):
            if key in q:
                fields.append((name, q[key]))
        if "size" in q:
            body = b"x" * int(q["size"])
        else:
            body = (f"{url.path} #{serial} lang={h.headers.get('x-lang')} "
                    f"auth={h.headers.get('authorization')}").encode()
        self._send(h, int(q.get("status", "200")), fields, body)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, fields: list[tuple[str, str]],
              body: bytes) -> None:
        h.send_response(status)
        for name, value in fields:
            h.send_header(name, value)
        if status != 304:
            h.send_header("content-length", str(len(body)))
        h.end_headers()
        if status != 304 and h.command != "HEAD":
            h.wfile.write(body)
