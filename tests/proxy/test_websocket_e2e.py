"""WebSocket tunnels end to end: real `websockets` clients and servers over 127.0.0.1 through a
real `edgeward run` process.

The origin runs in its own thread and event loop (module-scoped); each test drives its clients
on the test's loop and waits for conditions (metrics, the origin's records), never for time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from tests.observability.obskit import AdminGateway
from tests.support.until import until
from tests.support.wsclient import client, metric, two_slots_then_one_freed, worker_rss
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

T = TypeVar("T")
MIB = 1024 * 1024
FLOOD_MESSAGES = 96    # of 1 MiB: far more than the kernel's and the client's buffers hold
API_KEY = "ws-test-key-1"


@dataclass
class OriginLog:
    """What the origin saw, written by its thread, read by the tests."""

    handshakes: dict[str, int] = field(default_factory=dict)  # path -> handshakes reached
    close_codes: dict[str, list[int | None]] = field(default_factory=dict)  # path -> codes
    close_reasons: dict[str, list[str]] = field(default_factory=dict)
    flood_sent: int = 0
    flood_conn: ServerConnection | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, path: str) -> int:
        with self.lock:
            return self.handshakes.get(path, 0)

    def closed(self, path: str) -> list[int | None]:
        with self.lock:
            return list(self.close_codes.get(path, []))


class WsOrigin:
    """A `websockets` server: echo, plus a few scripted paths."""

    def __init__(self) -> None:
        self.log = OriginLog()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WsOrigin:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop)
        self._thread.join(10)

    def _stop(self) -> None:
        self.loop.create_task(self._close())

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.loop.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None,
                                   ping_interval=None, max_size=None,
                                   process_request=self._process_request,
                                   process_response=self._process_response)
        self.port = self._server.sockets[0].getsockname()[1]

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        with self.log.lock:
            self.log.handshakes[request.path] = self.log.handshakes.get(request.path, 0) + 1
        if request.path.startswith("/refusing"):
            return conn.respond(403, "origin says no\n")
        return None

    def _process_response(self, conn: ServerConnection, request: Request,
                          response: Response) -> Response | None:
        if request.path.startswith("/badaccept"):
            response.headers["Sec-WebSocket-Accept"] = base64.b64encode(b"x" * 20).decode()
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        try:
            if path.endswith("/flood"):
                await self._flood(ws)
            else:
                async for message in ws:
                    if message == "server-close":
                        await ws.close(4001, "server says bye")
                        break
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            with self.log.lock:
                self.log.close_codes.setdefault(path, []).append(
                    rcvd.code if rcvd is not None else None)
                self.log.close_reasons.setdefault(path, []).append(
                    rcvd.reason if rcvd is not None else "")

    async def _flood(self, ws: ServerConnection) -> None:
        self.log.flood_conn = ws
        chunk = b"\xab" * MIB
        for _ in range(FLOOD_MESSAGES):
            await ws.send(chunk)
            self.log.flood_sent += len(chunk)
        await ws.send("done")
        async for _ in ws:
            pass


CONFIG = """
listen: "{listen}"
admin: "{admin}"
server: {drain_timeout: 300ms}
consumers:
  tester: {api_keys: ["%(key)s"]}
upstreams:
  origin: {targets: ["127.0.0.1:%(port)d"]}
routes:
  - name: ws
    match: {path_prefix: /ws}
    upstream: origin
    websocket: true
  - name: idle
    match: {path_prefix: /idle}
    upstream: origin
    websocket: {idle_timeout: 300ms}
  - name: pinged
    match: {path_prefix: /pinged}
    upstream: origin
    websocket: {ping_interval: 200ms, idle_timeout: null}
  - name: limited
    match: {path_prefix: /limited}
    upstream: origin
    websocket: {max_tunnels: 2}
  - name: keyed
    match: {path_prefix: /keyed}
    upstream: origin
    websocket: true
    filters: [{api_key: {}}]
  - name: rated
    match: {path_prefix: /rated}
    upstream: origin
    websocket: true
    rate_limit: {rate: 1/m, burst: 1, key: client_ip}
  - name: refusing
    match: {path_prefix: /refusing}
    upstream: origin
    websocket: true
  - name: badaccept
    match: {path_prefix: /badaccept}
    upstream: origin
    websocket: true
  - name: plain
    match: {path_prefix: /}
    upstream: origin
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[WsOrigin]:
    with WsOrigin() as o:
        yield o


def gateway_for(origin: WsOrigin) -> AdminGateway:
    return AdminGateway(CONFIG % {"port": origin.port, "key": API_KEY})


@pytest.fixture(scope="module")
def gw(origin: WsOrigin) -> Iterator[AdminGateway]:
    with gateway_for(origin) as g:
        yield g


def raw_request(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request head; read the whole answer (the gateway closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = {n.strip().lower(): v.strip() for n, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), fields, body


KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(path: str = "/ws", *, version: str | None = "13", key: str | None = KEY,
              method: str = "GET", proto: str = "HTTP/1.1", extra: str = "") -> bytes:
    lines = [f"{method} {path} {proto}", "Host: gw.test", "Upgrade: websocket",
             "Connection: Upgrade"]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


# --- relaying -------------------------------------------------------------------------------
async def test_echo_of_text_binary_large_and_fragmented_messages(gw: AdminGateway) -> None:
    async with client(gw, "/ws/echo") as ws:
        await ws.send("hello, tunnel")
        assert await ws.recv() == "hello, tunnel"
        await ws.send(b"\x00\x01\xfe\xff")
        assert await ws.recv() == b"\x00\x01\xfe\xff"
        big = os.urandom(8 * MIB)
        await ws.send(big)
        assert await ws.recv() == big
        parts = [os.urandom(70_000) for _ in range(5)]  # five frames, one message
        await ws.send(parts)
        assert await ws.recv() == b"".join(parts)
        await ws.send(["fragmented ", "text"])
        assert await ws.recv() == "fragmented text"


async def test_metrics_count_upgrades_bytes_and_open_tunnels(gw: AdminGateway) -> None:
    before = metric(gw, "edgeward_websocket_upgrades_total", route="ws", outcome="upgraded")
    async with client(gw, "/ws/metrics") as ws:
        await ws.send(b"m" * 1000)
        await ws.recv()
        assert await until(lambda: metric(gw, "edgeward_websocket_tunnels_open", route="ws")
                           >= 1, "an open tunnel")
        assert metric(gw, "edgeward_websocket_upgrades_total", route="ws",
                      outcome="upgraded") == before + 1
        assert metric(gw, "edgeward_websocket_bytes_total", route="ws",
                      direction="to_upstream") >= 1000
        assert metric(gw, "edgeward_websocket_bytes_total", route="ws",
                      direction="to_client") >= 1000
    await until(lambda: metric(gw, "edgeward_websocket_tunnels_open", route="ws") == 0,
                "the tunnel closed")


# --- handshakes the gateway refuses ------------------------------------------------------------
@pytest.mark.parametrize(("head", "status", "code"), [
    (handshake("/plain/x"), 400, "websocket_not_allowed"),
    (handshake(key=None), 400, "websocket_bad_handshake"),
    (handshake(key="c2hvcnQ="), 400, "websocket_bad_handshake"),
    (handshake(method="POST", extra="Content-Length: 0\r\n"), 400, "websocket_bad_handshake"),
    (handshake(proto="HTTP/1.0"), 400, "websocket_bad_handshake"),
    (handshake(version="8"), 426, "websocket_version_unsupported"),
    (handshake(version=None), 426, "websocket_version_unsupported"),
    (handshake(extra="Content-Length: 3\r\n")[:-2] + b"\r\nabc", 400, "websocket_bad_handshake"),
])
def test_handshake_refusals(gw: AdminGateway, origin: WsOrigin, head: bytes, status: int,
                            code: str) -> None:
    path = head.split(b" ")[1].decode()
    reached = origin.log.saw(path)
    got, fields, body = raw_request(gw.port, head)
    assert (got, json.loads(body)["code"]) == (status, code)
    if status == 426:
        assert fields["sec-websocket-version"] == "13"
    assert fields["connection"] == "close"
    assert origin.log.saw(path) == reached  # never forwarded


def test_other_upgrades_stay_refused(gw: AdminGateway) -> None:
    h2c = (b"GET /ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    assert raw_request(gw.port, h2c)[0] == 400
    irc = b"GET /ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: IRC/6.9\r\n\r\n"
    got, _, body = raw_request(gw.port, irc)
    assert (got, json.loads(body)["code"]) == (501, "not_implemented")


async def test_authentication_runs_before_the_upgrade(gw: AdminGateway,
                                                      origin: WsOrigin) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with client(gw, "/keyed/a"):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "unauthenticated"
    assert origin.log.saw("/keyed/a") == 0
    async with client(gw, "/keyed/a", additional_headers={"apikey": API_KEY}) as ws:
        await ws.send("authenticated")
        assert await ws.recv() == "authenticated"
    assert origin.log.saw("/keyed/a") == 1


async def test_rate_limit_runs_before_the_upgrade(gw: AdminGateway, origin: WsOrigin) -> None:
    async with client(gw, "/rated/a") as ws:
        await ws.send("first")
        assert await ws.recv() == "first"
    with pytest.raises(InvalidStatus) as refused:
        async with client(gw, "/rated/a"):
            pass
    assert refused.value.response.status_code == 429
    assert json.loads(refused.value.response.body)["code"] == "rate_limited"
    assert origin.log.saw("/rated/a") == 1


# --- what the upstream answers ------------------------------------------------------------------
def test_a_non_101_answer_is_relayed_and_the_connection_closes(gw: AdminGateway) -> None:
    status, fields, body = raw_request(gw.port, handshake("/refusing/x"))
    assert (status, body) == (403, b"origin says no\n")
    assert fields["connection"] == "close"
    assert "upgrade" not in fields
    assert metric(gw, "edgeward_websocket_upgrades_total", route="refusing",
                  outcome="upstream_refused") >= 1


def test_a_101_with_a_wrong_accept_is_a_502(gw: AdminGateway) -> None:
    status, _, body = raw_request(gw.port, handshake("/badaccept/x"))
    assert (status, json.loads(body)["code"]) == (502, "bad_gateway")
    assert metric(gw, "edgeward_websocket_upgrades_total", route="badaccept",
                  outcome="failed") >= 1


# --- endings ----------------------------------------------------------------------------------
async def test_a_client_close_reaches_the_origin(gw: AdminGateway, origin: WsOrigin) -> None:
    async with client(gw, "/ws/client-close") as ws:
        await ws.send("x")
        await ws.recv()
        await ws.close(4002, "client says bye")
    assert await until(lambda: origin.log.closed("/ws/client-close"), "origin's close")
    assert origin.log.closed("/ws/client-close") == [4002]


async def test_an_origin_close_reaches_the_client(gw: AdminGateway) -> None:
    async with client(gw, "/ws/server-close") as ws:
        await ws.send("server-close")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "server says bye")


async def test_a_client_reset_ends_the_origin_connection(gw: AdminGateway,
                                                         origin: WsOrigin) -> None:
    ws = await client(gw, "/ws/reset")
    await ws.send("x")
    await ws.recv()
    assert ws.transport is not None
    ws.transport.abort()
    assert await until(lambda: origin.log.closed("/ws/reset"), "origin connection closed")
    assert origin.log.closed("/ws/reset") == [None]  # no close frame: the TCP ended
    await until(lambda: metric(gw, "edgeward_websocket_closed_total", route="ws",
                               reason="reset") >= 1
                or metric(gw, "edgeward_websocket_closed_total", route="ws", reason="closed")
                >= 1, "the tunnel accounted as ended")


async def test_an_idle_tunnel_gets_1001_both_ways(gw: AdminGateway, origin: WsOrigin) -> None:
    async with client(gw, "/idle/a") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()  # nothing is sent: the tunnel idles out
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "idle timeout")
    assert await until(lambda: origin.log.closed("/idle/a"), "origin's close")
    assert origin.log.closed("/idle/a") == [1001]
    assert await until(lambda: metric(gw, "edgeward_websocket_closed_total", route="idle",
                                      reason="idle_timeout") >= 1, "idle close counted")


async def test_gateway_pings_keep_answering_peers(gw: AdminGateway) -> None:
    async with client(gw, "/pinged/alive") as ws:  # websockets answers pings by itself
        await until(lambda: metric(gw, "edgeward_websocket_pings_total", route="pinged") >= 4,
                    "gateway pings sent")
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_a_peer_that_never_answers_a_ping_is_dead(gw: AdminGateway,
                                                        origin: WsOrigin) -> None:
    # A client that completes its handshake and then neither reads nor writes.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(handshake("/pinged/dead"))
        assert s.recv(65536).startswith(b"HTTP/1.1 101 ")
        assert await until(lambda: origin.log.closed("/pinged/dead"), "origin's close")
    assert origin.log.closed("/pinged/dead") == [1001]
    with origin.log.lock:
        assert origin.log.close_reasons["/pinged/dead"] == ["peer did not answer a ping"]
    assert await until(lambda: metric(gw, "edgeward_websocket_closed_total", route="pinged",
                                      reason="dead_peer")
                       + metric(gw, "edgeward_websocket_closed_total", route="pinged",
                                reason="cut") >= 1, "the dead tunnel counted")


async def test_the_route_tunnel_limit_refuses_with_503(gw: AdminGateway) -> None:
    await two_slots_then_one_freed(gw)


# --- backpressure -----------------------------------------------------------------------------
async def test_a_slow_reader_pauses_the_origin_instead_of_filling_gateway_memory(
        gw: AdminGateway, origin: WsOrigin) -> None:
    rss_before = worker_rss(gw)
    # The client library reads at most max_queue messages ahead of the application: with the
    # application not reading, the kernel buffers fill, then the gateway's write buffer.
    ws: ClientConnection = await client(gw, "/ws/flood", max_queue=1)
    try:
        await until(lambda: metric(gw, "edgeward_websocket_paused_total", route="ws") >= 1,
                    "the gateway pausing the origin")

        def origin_blocked() -> bool:
            conn = origin.log.flood_conn
            return conn is not None and conn.transport.get_write_buffer_size() > 0

        await until(origin_blocked, "the origin's writes backing up")
        sent = origin.log.flood_sent
        assert sent < FLOOD_MESSAGES * MIB  # the origin cannot finish while nobody reads
        grown = worker_rss(gw) - rss_before
        assert grown < 32 * 1024, f"gateway RSS grew by {grown} KiB holding the flood"
        received = 0
        while True:
            message = await ws.recv()
            if message == "done":
                break
            assert message == b"\xab" * MIB
            received += 1
        assert received == FLOOD_MESSAGES
    finally:
        await ws.close()


# --- shutdown -----------------------------------------------------------------------------------
async def test_shutdown_drain_sends_1001_to_both_sides(origin: WsOrigin) -> None:
    with gateway_for(origin) as g:
        async with client(g, "/ws/drain") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            stopping = asyncio.get_running_loop().run_in_executor(None, g.gw.stop)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert await stopping == 0
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "gateway shutting down")
    assert await until(lambda: origin.log.closed("/ws/drain"), "origin's close")
    assert origin.log.closed("/ws/drain") == [1001]



async def test_a_reload_that_withdraws_the_route_ends_its_tunnels_with_1001(
        origin: WsOrigin) -> None:
    with gateway_for(origin) as g:
        text = (CONFIG % {"port": origin.port, "key": API_KEY}).replace(
            "{listen}", f"127.0.0.1:{g.port}").replace("{admin}", f"127.0.0.1:{g.admin_port}")
        async with client(g, "/ws/kept") as kept, client(g, "/limited/withdrawn") as gone:
            withdrawn = text.replace("    websocket: {max_tunnels: 2}\n", "")
            assert withdrawn != text
            reply = g.admin("POST", "/config", withdrawn)
            assert reply.status == 200, reply
            with pytest.raises(ConnectionClosed) as closed:
                await gone.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1001, "route withdrawn by a reload")
            await kept.send("still open")  # its route still takes WebSocket
            assert await kept.recv() == "still open"
        assert await until(lambda: origin.log.closed("/limited/withdrawn"), "origin's close")
        assert origin.log.closed("/limited/withdrawn") == [1001]
