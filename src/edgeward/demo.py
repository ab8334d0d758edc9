"""`edgeward demo`: the gateway plus two echo origins ("stable" and "canary") in one process.

The origins answer JSON naming themselves and echoing method, path and headers, so a
newcomer can watch routing and the gray split work with nothing else installed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import httptools

DEMO_CONFIG = """\
# The config `edgeward demo` serves (origins on loopback ports chosen at start).
listen: {listen}
admin: {admin}
upstreams:
  stable: {{targets: ["127.0.0.1:{stable}"]}}
  canary: {{targets: ["127.0.0.1:{canary}"]}}
routes:
  - name: gray
    match: {{path_prefix: /}}
    split:
      - {{upstream: canary, when: {{header: {{x-canary: "1"}}}}}}
      - {{upstream: canary, when: {{cookie: {{canary: "1"}}}}}}
      - {{upstream: stable, weight: 90}}
      - {{upstream: canary, weight: 10}}
    rate_limit: {{rate: 100/s, burst: 200, key: client_ip}}
"""


class EchoOrigin(asyncio.Protocol):
    """A tiny keep-alive HTTP/1.1 origin answering JSON about the request it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += len(body)

    def on_message_complete(self) -> None:
        doc = {
            "origin": self.name,
            "method": self.parser.get_method().decode(),
            "path": self.url.decode("latin-1"),
            "headers": self.headers,
            "body_bytes": self.body,
        }
        payload = json.dumps(doc, indent=2).encode() + b"\n"
        head = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nx-origin: %s\r\n\r\n" % (len(payload), self.name.encode()))
        if self.transport is not None:
            self.transport.write(head + payload)
            if not self.parser.should_keep_alive():
                self.transport.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(listen: tuple[str, int], workers: int) -> int:
    from edgeward.launch import run_text

    stable, canary, admin = _free_port(), _free_port(), _free_port()
    host = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
    text = DEMO_CONFIG.format(listen=f"{host}:{listen[1]}", admin=f"127.0.0.1:{admin}",
                              stable=stable, canary=canary)
    origins = [("stable", stable), ("canary", canary)]

    def start_origins() -> None:
        loop = asyncio.get_running_loop()
        for name, port in origins:
            loop.create_task(loop.create_server(lambda n=name: EchoOrigin(n),  # type: ignore[misc]
                                                "127.0.0.1", port, reuse_port=True))

    base = f"http://{host}:{listen[1]}"
    print(
        "edgeward demo: two echo origins (stable, canary) behind a gray split.\n"
        f"  curl {base}/                      # 90 % stable, 10 % canary\n"
        f"  curl -H 'x-canary: 1' {base}/     # always canary\n"
        f"  curl http://127.0.0.1:{admin}/metrics   # admin API; dashboard at /\n",
        file=sys.stderr, flush=True,
    )
    return run_text(text, "edgeward demo", workers, before=start_origins)
