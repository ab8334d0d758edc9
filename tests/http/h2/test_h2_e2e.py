"""HTTP/2 from clients over real sockets: one gateway (a plain listener for h2c and HTTP/1.1,
a TLS listener for h2 by ALPN, an admin port) in front of a real HTTP/1.1 origin; clients are
the `h2` package, curl and hand-crafted frames.

Every attack ends its own connection with GOAWAY and the right code, is counted in
`edgeward_h2_glitches_total{reason}`, and leaves the gateway serving other connections.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h2.events
import pytest
from tests.observability.obskit import get, wait_until
from tests.observe.promtext import parse_exposition
from tests.support.gateway import GatewayProcess, free_port, port_accepts
from tests.support.h2kit import (
    CONTINUATION,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    SETTINGS,
    client_h2,
    frame,
    frames,
    request,
)
from tests.support.origin import Origin
from tests.tls.certkit import Authority

CONFIG = """
listen: "{{listen}}"
admin: 127.0.0.1:{admin}
server:
  http2: {{reset_min_streams: 20, max_streams_per_read: 50, glitch_burst: 50,
           glitch_rate: 5/s, max_continuations: 4}}
listeners:
  - address: 127.0.0.1:{tls}
    tls: {{certificates: [{{cert: {d}/gw.pem, key: {d}/gw.key}}]}}
upstreams:
  origin: {{targets: ["{origin}"]}}
routes:
  - {{match: {{path_prefix: /}}, upstream: origin}}
"""
TIMEOUT = 10.0


@dataclass
class Site:
    gw: GatewayProcess
    origin: Origin
    d: Path
    tls: int
    admin: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    d = tmp_path_factory.mktemp("h2site")
    ca = Authority.root("h2 root")
    ca.issue(["gw.test"]).write(d / "gw")
    (d / "root.pem").write_bytes(ca.pem)
    tls, admin = free_port(), free_port()
    with Origin() as origin:
        text = CONFIG.format(d=d, origin=origin.address, tls=tls, admin=admin)
        with GatewayProcess.config(text) as gw:
            for port in (tls, admin):
                wait_until(lambda p=port: port_accepts(p), what=f"port {port}")
            yield Site(gw, origin, d, tls, admin)


class Client:
    """An `h2` client on a real socket (h2c, or h2 over TLS)."""

    def __init__(self, port: int, tls_root: Path | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls_root is not None:
            ctx = ssl.create_default_context(cafile=str(tls_root))
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="gw.test")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.h2 = client_h2()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def fetch(self, path: str, body: bytes | None = None,
              method: str = "GET") -> tuple[dict[bytes, bytes], bytes]:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, request(path, method, "gw.test"), end_stream=body is None)
        self.flush()
        if body is not None:
            self._send_body(sid, body)
        return self._answer(sid)

    def _send_body(self, sid: int, body: bytes) -> None:
        while body:
            room = min(self.h2.local_flow_control_window(sid), 16384)
            if room == 0:
                self._pump()  # wait for the gateway to give window back
                continue
            self.h2.send_data(sid, body[:room])
            body = body[room:]
            self.flush()
        self.h2.end_stream(sid)
        self.flush()

    def _pump(self) -> list[h2.events.Event]:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the gateway")
        events = self.h2.receive_data(data)
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.flush()
        self.pending.extend(events)
        return events

    pending: list[h2.events.Event] = []

    def _answer(self, sid: int) -> tuple[dict[bytes, bytes], bytes]:
        self.pending = []
        head: dict[bytes, bytes] = {}
        body = []
        while True:
            for e in self._pump():
                if getattr(e, "stream_id", None) != sid:
                    continue
                if isinstance(e, h2.events.ResponseReceived):
                    head = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    body.append(e.data)
                elif isinstance(e, h2.events.StreamEnded):
                    return head, b"".join(body)
                elif isinstance(e, h2.events.StreamReset):
                    raise ConnectionError(f"stream reset {e.error_code}")

    def close(self) -> None:
        self.sock.close()


def goaway_code(sock: socket.socket) -> int | None:
    """Read until the gateway closes; the error code of its last GOAWAY (None: none)."""
    data = b""
    sock.settimeout(TIMEOUT)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    codes = [int.from_bytes(p[4:8], "big") for kind, _, _, p in frames(data) if kind == GOAWAY]
    return codes[-1] if codes else None


def send(sock: socket.socket, data: bytes) -> None:
    """Send what an attacker sends; the gateway may have closed the connection already."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def raw_h2c(site: Site) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", site.gw.port), timeout=TIMEOUT)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return sock


def glitches(site: Site) -> dict[str, float]:
    _, _, samples = parse_exposition(get(site.admin, "/metrics").body.decode())
    return {dict(labels)["reason"]: v for (name, labels), v in samples.items()
            if name == "edgeward_h2_glitches_total" and v}


def still_serves(site: Site) -> None:
    c = Client(site.gw.port)
    head, _ = c.fetch("/status/204")
    c.close()
    assert head[b":status"] == b"204"


# --- h2c and h2 -------------------------------------------------------------------------------
def test_h2c_streams_reach_the_origin_as_http11(site: Site) -> None:
    c = Client(site.gw.port)
    head, body = c.fetch("/echo?x=1")
    assert head[b":status"] == b"200" and b"x-request-id" in head
    assert b'"target": "/echo?x=1"' in body and b'["host", "gw.test"]' in body
    upload = bytes(range(256)) * 4096  # 1 MiB: more than the stream and connection windows
    head, body = c.fetch("/upload", upload, method="POST")
    assert head[b":status"] == b"200"
    assert hashlib.sha256(upload).hexdigest().encode() in body
    head, body = c.fetch("/big?bytes=3000000")
    assert len(body) == 3_000_000 and head[b"content-length"] == b"3000000"
    c.close()


def test_h2_over_tls_by_alpn(site: Site) -> None:
    c = Client(site.tls, site.d / "root.pem")
    head, body = c.fetch("/chunked")
    assert head[b":status"] == b"200" and body
    c.close()


@pytest.mark.parametrize("how", ["prior-knowledge", "tls"])
def test_curl_speaks_http2(site: Site, how: str) -> None:
    assert shutil.which("curl"), "curl is a test dependency (scripts/test.sh)"
    if how == "tls":
        args = ["--http2", "--cacert", str(site.d / "root.pem"), "--resolve",
                f"gw.test:{site.tls}:127.0.0.1", f"https://gw.test:{site.tls}/echo"]
    else:
        args = ["--http2-prior-knowledge", f"http://127.0.0.1:{site.gw.port}/echo"]
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          *args], capture_output=True, timeout=30)
    assert out.stdout.decode() == "2 200", out.stderr


def test_http11_still_served_and_upgrade_h2c_refused(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.gw.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 204")
    with socket.create_connection(("127.0.0.1", site.gw.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")


# --- attacks ------------------------------------------------------------------------------------
def test_rapid_reset_gets_goaway_enhance_your_calm(site: Site) -> None:
    c = client_h2()
    sock = raw_h2c(site)
    sock.sendall(c.data_to_send()[len(PREFACE):])
    for batch in range(5):
        for i in range(10):
            sid = 1 + 2 * (batch * 10 + i)
            c.send_headers(sid, request("/slow?ms=2000"), end_stream=True)
            c.reset_stream(sid, 8)
        send(sock, c.data_to_send())
    assert goaway_code(sock) == 0xB
    still_serves(site)
    wait_until(lambda: glitches(site).get("rapid_reset", 0) >= 1, what="rapid_reset counted")


@pytest.mark.parametrize(("flood", "reason"), [
    (frame(PING, 0, 0, b"pingpong") * 200, "ping"),
    (frame(SETTINGS, 0, 0) * 200, "settings"),
])
def test_control_frame_floods_get_goaway_enhance_your_calm(site: Site, flood: bytes,
                                                           reason: str) -> None:
    sock = raw_h2c(site)
    send(sock, flood)
    assert goaway_code(sock) == 0xB
    still_serves(site)
    wait_until(lambda: glitches(site).get(reason, 0) >= 1, what=f"{reason} counted")


def test_a_continuation_flood_ends_the_connection(site: Site) -> None:
    c = client_h2()
    block = c.encoder.encode(request("/"))
    sock = raw_h2c(site)
    send(sock, frame(HEADERS, 0, 1, block) + frame(CONTINUATION, 0, 1, b"") * 50)
    assert goaway_code(sock) in (0x1, 0xB)
    still_serves(site)
    assert site.gw.proc is not None and site.gw.proc.poll() is None


def test_many_streams_in_one_read_get_goaway(site: Site) -> None:
    c = client_h2()
    sock = raw_h2c(site)
    sock.sendall(c.data_to_send()[len(PREFACE):])
    for i in range(60):  # max_streams_per_read 50 (and max_concurrent_streams 100)
        c.send_headers(1 + 2 * i, request("/status/204"), end_stream=True)
    send(sock, c.data_to_send())
    assert goaway_code(sock) == 0xB
    still_serves(site)


# --- reload and shutdown --------------------------------------------------------------------------
def read_until_closed(sock: socket.socket) -> list[tuple[int, int, int, bytes]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return frames(data)


def finished_after_goaway(sent: list[tuple[int, int, int, bytes]], sid: int,
                          path: bytes) -> None:
    """A GOAWAY NO_ERROR naming `sid` as the last stream, then that stream's whole answer."""
    goaways = [p for kind, _, _, p in sent if kind == GOAWAY]
    assert goaways, "no GOAWAY"
    last, code = int.from_bytes(goaways[0][:4], "big"), int.from_bytes(goaways[0][4:8], "big")
    assert (last, code) == (sid, 0)
    body = b"".join(p for kind, _, s, p in sent if kind == 0 and s == sid)
    assert path in body
    assert any(kind == 0 and s == sid and flags & 1 for kind, flags, s, _ in sent)


def test_a_reload_that_changes_http2_limits_sends_goaway(site: Site) -> None:
    c = Client(site.gw.port)
    c.fetch("/status/204")  # stream 1: the connection is up
    c.h2.send_headers(3, request("/slow?ms=1500", "GET", "gw.test"), end_stream=True)
    c.flush()
    path = site.gw.workdir / "edgeward.yaml"
    path.write_text(path.read_text().replace("glitch_burst: 50", "glitch_burst: 60"))
    finished_after_goaway(read_until_closed(c.sock), 3, b"/slow?ms=1500")
    still_serves(site)


def test_sigterm_sends_goaway_and_the_stream_in_flight_finishes() -> None:
    with Origin() as origin, GatewayProcess.proxy(origin.address) as gw:
        c = Client(gw.port)
        c.h2.send_headers(1, request("/slow?ms=500", "GET", "gw.test"), end_stream=True)
        c.flush()
        wait_until(lambda: len(origin.requests_since((0, 0, 0))) >= 1,
                   what="the stream at the origin")
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        finished_after_goaway(read_until_closed(c.sock), 1, b"/slow?ms=500")
        assert gw.wait(15) == 0
