"""WebSocket connections a filter accepts itself (`Reply.websocket`).

First the endpoint alone on a fake transport (what it writes, what the handler is told);
then end to end: a real `edgeward run` with the test filter
`tests.http.ws_filters:EchoFilter`, real `websockets` clients and raw sockets over 127.0.0.1.
One gateway serves the module (the drain test starts its own); tests wait for conditions,
never for time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.observability.obskit import AdminGateway, get
from tests.support.until import until
from tests.support.wsclient import client, metric, two_slots_then_one_freed, worker_rss
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead
from edgeward.http.tunnel import TunnelSettings, TunnelStats
from edgeward.http.ws_codec import OP_PONG, OP_TEXT, close_payload, frame
from edgeward.http.ws_endpoint import WebSocket, WebSocketHandler
from edgeward.http.ws_handshake import accept_for

T = TypeVar("T")
MIB = 1024 * 1024
API_KEY = "ws-local-key-1"
ROOT = str(Path(__file__).resolve().parents[2])
ENV = {"PYTHONPATH": ROOT}
ECHO = '{python: "tests.http.ws_filters:EchoFilter"}'

CONFIG = """
listen: "{listen}"
admin: "{admin}"
server: {drain_timeout: 300ms}
consumers:
  tester: {api_keys: ["APIKEY"]}
routes:
  - name: local
    match: {path_prefix: /local}
    respond: {status: 404}
    websocket: {max_message: 64KiB}
    filters: [{response_headers: {set: {x-route: "${route}"}}}, ECHO]
  - name: keyed
    match: {path_prefix: /keyed}
    respond: {status: 404}
    websocket: true
    filters: [{api_key: {}}, ECHO]
  - name: limited
    match: {path_prefix: /limited}
    respond: {status: 404}
    websocket: {max_tunnels: 2}
    filters: [ECHO]
  - name: idle
    match: {path_prefix: /idle}
    respond: {status: 404}
    websocket: {idle_timeout: 300ms}
    filters: [ECHO]
  - name: pinged
    match: {path_prefix: /pinged}
    respond: {status: 404}
    websocket: {ping_interval: 100ms, idle_timeout: null}
    filters: [ECHO]
  - name: flood
    match: {path_prefix: /flood}
    respond: {status: 404}
    websocket: true
    filters: [ECHO]
""".replace("APIKEY", API_KEY).replace("ECHO", ECHO)


def gateway() -> AdminGateway:
    return AdminGateway(CONFIG, env=ENV)


@pytest.fixture(scope="module")
def gw() -> Iterator[AdminGateway]:
    with gateway() as g:
        yield g


def closed_with(exc: ConnectionClosed) -> tuple[int, str]:
    assert exc.rcvd is not None, exc
    return exc.rcvd.code, exc.rcvd.reason


KEY = base64.b64encode(os.urandom(16)).decode()
HANDSHAKE = (f"GET /local/raw HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             f"Sec-WebSocket-Key: {KEY}\r\n\r\n").encode()


def raw_session(port: int, after_handshake: bytes, path: str = "/local/raw"
                ) -> tuple[bytes, bytes]:
    """A handshake and `after_handshake` in one write, then only reading (pings are never
    answered; the gateway's close is); (the 101 head, everything after it until the gateway
    closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HANDSHAKE.replace(b"/local/raw", path.encode()) + after_handshake)
        data = b""
        answered = False
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break  # the gateway closed first and our answer came too late: fine
            if not chunk:
                break
            data += chunk
            rest = data.partition(b"\r\n\r\n")[2]
            if not answered and rest and frames_of(rest)[-1][0] == 0x8:
                answered = True
                with contextlib.suppress(OSError):
                    s.sendall(frame(0x8, frames_of(rest)[-1][1][:2], mask_key=b"abcd"))
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def frames_of(data: bytes) -> list[tuple[int, bytes]]:
    """Server frames (unmasked, payload < 64 KiB) in `data`."""
    out = []
    while len(data) >= 2:  # a frame cut by the read is taken as far as it came
        n, at = data[1] & 0x7F, 2
        if n == 126:
            n, at = int.from_bytes(data[2:4], "big"), 4
        out.append((data[0] & 0x0F, data[at:at + n]))
        data = data[at + n:]
    return out


# --- the endpoint on a fake transport -------------------------------------------------------
class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = self.aborted = False
        self.reading = False
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, parts: list[bytes]) -> None:
        self.written += b"".join(parts)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Recorder(WebSocketHandler):
    def __init__(self, fail_open: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_open = fail_open

    def on_open(self, ws: WebSocket) -> None:
        if self.fail_open:
            raise RuntimeError("on purpose")
        self.calls.append(("open",))

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "raise":
            raise RuntimeError("on purpose")
        self.calls.append(("message", message))

    def on_resume(self, ws: WebSocket) -> None:
        self.calls.append(("resume",))

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))


def endpoint(early: bytes = b"", fail_open: bool = False
             ) -> tuple[WebSocket, FakeTransport, Recorder, TunnelStats]:
    registry: set[WebSocket] = set()
    stats = TunnelStats("r")
    stats.open = 1  # the slot the exchange reserved
    handler = Recorder(fail_open)
    head = RequestHead("GET", b"/ws", "/ws", "h", b"h", Headers([]), NO_BODY, "127.0.0.1")
    ws = WebSocket(head, handler, asyncio.get_running_loop(), registry,
                   TunnelSettings(max_message=1000), stats)
    transport = FakeTransport()
    ws.start(transport, early)  # type: ignore[arg-type]  # a transport by shape
    assert ws in registry and transport.reading
    return ws, transport, handler, stats


def masked(opcode: int, payload: bytes) -> bytes:
    return frame(opcode, payload, mask_key=os.urandom(4))


async def test_messages_pings_and_the_clients_close() -> None:
    ws, transport, handler, stats = endpoint(early=masked(OP_TEXT, b"first"))
    ws.data_received(masked(0x9, b"ping?") + masked(0x2, b"\x00bin"))
    ws.send("answer")
    assert frames_of(transport.written) == [(OP_PONG, b"ping?"), (OP_TEXT, b"answer")]
    transport.written = b""
    ws.data_received(masked(0x8, (4000).to_bytes(2, "big") + b"bye"))
    assert frames_of(transport.written) == [(0x8, (4000).to_bytes(2, "big"))]  # the code echoed
    assert transport.closed and ws.closed
    ws.send("too late")
    assert frames_of(transport.written) == [(0x8, (4000).to_bytes(2, "big"))]
    ws.connection_lost(None)
    ws.connection_lost(None)
    assert handler.calls == [("open",), ("message", "first"), ("message", b"\x00bin"),
                             ("close", 4000, "bye")]
    assert stats.open == 0 and stats.ended == {"closed": 1}


async def test_protocol_errors_close_at_once_with_their_code() -> None:
    ws, transport, handler, stats = endpoint()
    ws.data_received(masked(0x2, b"x" * 1001))  # over max_message
    assert frames_of(transport.written) == [(0x8, (1009).to_bytes(2, "big")
                                             + b"message over 1000 bytes")]
    assert transport.closed
    ws.connection_lost(None)
    assert handler.calls[-1] == ("close", 1009, "message over 1000 bytes")
    assert stats.ended == {"protocol_error": 1}


async def test_a_handler_that_raises_gets_1011_and_the_connection_is_cut_if_unanswered(
) -> None:
    ws, transport, handler, stats = endpoint()
    ws.data_received(masked(OP_TEXT, b"raise"))
    assert frames_of(transport.written) == [(0x8, (1011).to_bytes(2, "big")
                                             + b"internal error")]
    assert not transport.closed  # the client's close is awaited (CLOSE_WAIT), then abort
    ws.abort()
    assert transport.aborted
    ws.connection_lost(None)
    assert handler.calls[-1] == ("close", 1011, "internal error")
    assert stats.ended == {"handler_error": 1}


async def test_a_handler_that_fails_to_open_closes_with_1011_and_reads_the_answer() -> None:
    ws, transport, handler, _ = endpoint(fail_open=True)
    assert frames_of(transport.written) == [(0x8, (1011).to_bytes(2, "big")
                                             + b"internal error")]
    assert transport.reading  # the client's close answer is read
    ws.data_received(masked(0x8, (1011).to_bytes(2, "big")))
    assert transport.closed
    ws.connection_lost(None)
    assert handler.calls == [("close", 1011, "internal error")]


async def test_pause_and_resume_drive_paused_drain_and_on_resume() -> None:
    ws, transport, handler, _ = endpoint()
    await ws.drain()  # not paused: returns at once
    ws.pause_writing()
    assert ws.paused and not transport.reading  # the client is not read while it lags
    waiting = asyncio.ensure_future(ws.drain())
    await asyncio.sleep(0)
    assert not waiting.done()
    ws.resume_writing()
    await asyncio.wait_for(waiting, 1)
    assert not ws.paused and transport.reading
    assert handler.calls[-1] == ("resume",)
    ws.pause_writing()
    waiting = asyncio.ensure_future(ws.drain())
    await asyncio.sleep(0)
    ws.connection_lost(ConnectionResetError())  # closing also ends a drain
    await asyncio.wait_for(waiting, 1)
    assert handler.calls[-1] == ("close", 1006, "")


async def test_close_refuses_codes_an_endpoint_may_not_send() -> None:
    ws, transport, _, _ = endpoint()
    with pytest.raises(ValueError, match="1005"):
        ws.close(1005)
    ws.close(4100, "done")
    assert frames_of(transport.written) == [(0x8, (4100).to_bytes(2, "big") + b"done")]
    ws.close(1000)  # once closing, a no-op
    assert len(frames_of(transport.written)) == 1
    ws.abort()


# --- messages -----------------------------------------------------------------------------------
async def test_echo_of_text_binary_fragmented_and_large_messages(gw: AdminGateway) -> None:
    async with client(gw, "/local/echo", subprotocols=["other", "echo.v1"]) as ws:
        assert ws.subprotocol == "echo.v1"
        assert ws.response.headers["x-echo"] == "1"
        assert ws.response.headers["x-route"] == "local"  # response filters see the 101
        assert ws.response.headers["sec-websocket-accept"]  # checked by the client library
        await ws.send("hello, gateway ✓")
        assert await ws.recv() == "hello, gateway ✓"
        await ws.send(b"\x00\x01\xfe\xff")
        assert await ws.recv() == b"\x00\x01\xfe\xff"
        big = os.urandom(60_000)  # under the route's max_message of 64 KiB
        await ws.send(big)
        assert await ws.recv() == big
        parts = [os.urandom(15_000) for _ in range(4)]  # four frames, one message
        await ws.send(parts)
        assert await ws.recv() == b"".join(parts)
        await ws.send(["fragmented ", "text ", "é"])
        assert await ws.recv() == "fragmented text é"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.send("stats")
        assert json.loads(await ws.recv())["path"] == "/local/echo"


async def test_early_frames_sent_with_the_handshake_are_the_first_messages(
        gw: AdminGateway) -> None:
    early = frame(OP_TEXT, b"early", mask_key=b"wxyz") + frame(0x8, b"\x03\xe8",
                                                                 mask_key=b"wxyz")
    head, rest = await asyncio.to_thread(raw_session, gw.port, early)
    assert head.startswith(b"HTTP/1.1 101")
    assert f"sec-websocket-accept: {accept_for(KEY)}".encode() in head
    assert frames_of(rest) == [(OP_TEXT, b"early"), (0x8, b"\x03\xe8")]  # echo, close answered


async def test_an_unmasked_client_frame_is_a_protocol_error_1002(gw: AdminGateway) -> None:
    head, rest = await asyncio.to_thread(raw_session, gw.port, frame(OP_TEXT, b"unmasked"))
    assert head.startswith(b"HTTP/1.1 101")
    (opcode, payload), = frames_of(rest)
    assert opcode == 0x8 and close_payload(payload)[0] == 1002


async def test_a_message_over_max_message_closes_with_1009(gw: AdminGateway) -> None:
    async with client(gw, "/local/big") as ws:
        await ws.send(b"x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed_with(closed.value)[0] == 1009


# --- closing ------------------------------------------------------------------------------------
async def test_a_client_close_is_answered_with_its_code(gw: AdminGateway) -> None:
    ws: ClientConnection = await client(gw, "/local/close")
    await ws.close(4001, "client done")
    assert ws.close_code == 4001 and ws.close_reason == ""  # echoed code (§5.5.1)


async def test_the_handler_closes_with_its_code_and_reason(gw: AdminGateway) -> None:
    async with client(gw, "/local/close") as ws:
        await ws.send("close 4002 handler done")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed_with(closed.value) == (4002, "handler done")


async def test_a_handler_exception_closes_with_1011_and_the_worker_carries_on(
        gw: AdminGateway) -> None:
    async with client(gw, "/local/fail") as ws:
        await ws.send("raise")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed_with(closed.value) == (1011, "internal error")
    assert "the test handler fails on purpose" in gw.gw.stderr_text()
    async with client(gw, "/local/after") as ws:
        await ws.send("still serving")
        assert await ws.recv() == "still serving"
    assert await until(lambda: metric(gw, "edgeward_websocket_closed_total", route="local",
                                      reason="handler_error") >= 1, "handler_error counted")


# --- what runs before the 101 -----------------------------------------------------------------
async def test_authentication_runs_before_the_accepting_filter(gw: AdminGateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with client(gw, "/keyed/a"):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "unauthenticated"
    async with client(gw, "/keyed/a", additional_headers={"apikey": API_KEY}) as ws:
        await ws.send("stats")
        assert json.loads(await ws.recv())["consumer"] == "tester"


@pytest.mark.parametrize(("path", "headers", "code"), [
    ("/local/plain", {}, "websocket_handshake_required"),
    ("/local/pick-unoffered", None, "websocket_subprotocol_not_offered"),
])
async def test_refusals_of_reply_websocket(gw: AdminGateway, path: str,
                                           headers: dict[str, str] | None, code: str) -> None:
    if headers is not None:  # a plain GET: not a handshake
        reply = await asyncio.to_thread(get, gw.port, path)
        assert (reply.status, reply.json()["code"]) == (400, code)
        return
    with pytest.raises(InvalidStatus) as refused:
        async with client(gw, path):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["code"] == code


async def test_connections_hold_the_routes_max_tunnels_slots(gw: AdminGateway) -> None:
    await two_slots_then_one_freed(gw)
    assert metric(gw, "edgeward_websocket_upgrades_total", route="limited",
                  outcome="upgraded") == 3


# --- liveness -----------------------------------------------------------------------------------
async def test_an_idle_connection_gets_1001(gw: AdminGateway) -> None:
    async with client(gw, "/idle/1") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed_with(closed.value) == (1001, "idle timeout")


async def test_a_client_that_never_answers_a_ping_is_dead(gw: AdminGateway) -> None:
    head, rest = await asyncio.to_thread(raw_session, gw.port, b"", "/pinged/dead")
    assert head.startswith(b"HTTP/1.1 101")
    frames = frames_of(rest)
    assert frames[0] == (0x9, b"edgeward")
    assert frames[-1][0] == 0x8
    assert close_payload(frames[-1][1]) == (1001, "peer did not answer a ping")


async def test_gateway_pings_are_answered_by_a_live_client(gw: AdminGateway) -> None:
    async with client(gw, "/pinged/1") as ws:
        await until(lambda: metric(gw, "edgeward_websocket_pings_total", route="pinged") >= 3,
                    "three pings")
        await ws.send("alive")  # the client answered every ping: still open
        assert await ws.recv() == "alive"


# --- backpressure -------------------------------------------------------------------------------
async def test_a_client_that_stops_reading_pauses_the_handler(gw: AdminGateway) -> None:
    rss_before = worker_rss(gw)
    flood = 64  # messages of 1 MiB: far more than the kernel's and the client's buffers
    ws: ClientConnection = await client(gw, "/flood/1", max_queue=1)
    try:
        await ws.send(f"flood {flood}")
        await until(lambda: metric(gw, "edgeward_websocket_paused_total", route="flood") >= 1,
                    "the connection paused")
        grown = worker_rss(gw) - rss_before
        assert grown < 32 * 1024, f"gateway RSS grew by {grown} KiB while the client slept"
        received = 0
        while (message := await ws.recv()) != "done":
            assert message == b"\xab" * MIB
            received += 1
        assert received == flood
        await ws.send("stats")
        stats = json.loads(await ws.recv())
        assert stats["paused_seen"] and stats["resumes"] >= 1
    finally:
        await ws.close()


# --- draining -----------------------------------------------------------------------------------
async def test_shutdown_drain_closes_with_1001() -> None:
    with gateway() as g:
        async with client(g, "/local/drain") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            stopping = asyncio.get_running_loop().run_in_executor(None, g.gw.stop)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert await stopping == 0
    assert closed_with(closed.value) == (1001, "gateway shutting down")


async def test_a_reload_that_withdraws_the_route_closes_with_1001() -> None:
    with gateway() as g:
        text = CONFIG.replace("{listen}", f"127.0.0.1:{g.port}").replace(
            "{admin}", f"127.0.0.1:{g.admin_port}")
        async with client(g, "/local/kept") as kept, client(g, "/limited/gone") as gone:
            withdrawn = text.replace("    websocket: {max_tunnels: 2}\n", "")
            assert withdrawn != text
            reply = g.admin("POST", "/config", withdrawn)
            assert reply.status == 200, reply
            with pytest.raises(ConnectionClosed) as closed:
                await gone.recv()
            assert closed_with(closed.value) == (1001, "route withdrawn by a reload")
            await kept.send("still open")  # its route still takes WebSocket
            assert await kept.recv() == "still open"
