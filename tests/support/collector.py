"""A real OTLP/HTTP collector stand-in on 127.0.0.1: decodes gzip and OTLP/JSON, answers as
scripted (status, Retry-After), keeps what it got."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Collector:
    """Answers each POST with the next scripted (status, Retry-After), then 200; keeps each
    request's path, headers and decoded OTLP/JSON body."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str | None]] = []
        self.posts: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.times: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-encoding") == "gzip":
                    raw = gzip.decompress(raw)
                outer.posts.append((self.path, headers, json.loads(raw)))
                outer.times.append(time.monotonic())
                status, after = outer.script.pop(0) if outer.script else (200, None)
                self.send_response(status)
                if after is not None:
                    self.send_header("Retry-After", after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        return [span for _, _, body in list(self.posts) for rs in body["resourceSpans"]
                for ss in rs["scopeSpans"] for span in ss["spans"]]
