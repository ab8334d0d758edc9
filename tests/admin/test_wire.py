"""The admin HTTP/1.1 connection: keep-alive, pipelining, limits and framing errors."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from adminkit import GOOD_SMALL, Client, MemoryBackend, encode_request  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402
from edgeward.admin.wire import Limits, json_bytes  # noqa: E402


@pytest.fixture
async def small(backend: MemoryBackend) -> AsyncIterator[AdminServer]:
    limits = Limits(max_body=256, max_head=2048, idle_timeout=0.3)
    srv = AdminServer(backend, token=None, limits=limits)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


async def test_keep_alive_serves_many_requests_on_one_connection(client: Client) -> None:
    for _ in range(20):
        r = await client.request("GET", "/healthz")
        assert r.status == 200 and "connection" not in r.headers


async def test_pipelined_requests_answer_in_order(
    client: Client, backend: MemoryBackend
) -> None:
    backend.apply_delay = 0.05  # the first answer is the slowest
    await client.send_raw(
        encode_request("POST", "/config", GOOD_SMALL.encode())
        + encode_request("GET", "/nope")
        + encode_request("GET", "/healthz")
    )
    statuses = [(await client.read_response()).status for _ in range(3)]
    assert statuses == [200, 404, 200]


async def test_connection_close_is_honoured(client: Client) -> None:
    r = await client.request("GET", "/healthz", headers={"Connection": "close"})
    assert r.status == 200 and r.headers["connection"] == "close"
    assert await client.closed_by_server()


async def test_http10_without_keep_alive_closes(server: AdminServer) -> None:
    c = await Client.connect(server.port)
    await c.send_raw(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = await c.read_response()
    assert r.status == 200 and await c.closed_by_server()
    await c.close()


async def test_declared_oversized_body_is_refused_before_it_is_read(
    small: AdminServer, backend: MemoryBackend
) -> None:
    c = await Client.connect(small.port)
    await c.send_raw(b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/yaml\r\nContent-Length: 257\r\n\r\n")
    r = await c.read_response()
    body = r.json()
    assert r.status == 413 and body["code"] == "body_too_large" and "256" in body["detail"]
    assert await c.closed_by_server()
    assert len(backend.applied_texts) == 1
    await c.close()


async def test_chunked_body_over_the_limit_is_refused(small: AdminServer) -> None:
    c = await Client.connect(small.port)
    chunk = b"x" * 200
    await c.send_raw(b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"c8\r\n" + chunk + b"\r\n" + b"c8\r\n" + chunk + b"\r\n0\r\n\r\n")
    r = await c.read_response()
    assert r.status == 413 and r.json()["code"] == "body_too_large"
    await c.close()


async def test_chunked_body_within_the_limit_is_applied(
    small: AdminServer, backend: MemoryBackend
) -> None:
    c = await Client.connect(small.port)
    body = GOOD_SMALL.encode()
    await c.send_raw(b"POST /config HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    r = await c.read_response()
    assert (r.status, r.json()) == (200, {"applied": True})
    assert backend.applied_texts[-1] == GOOD_SMALL
    await c.close()


async def test_body_exactly_at_the_limit_is_accepted(small: AdminServer) -> None:
    c = await Client.connect(small.port)
    r = await c.request("POST", "/config", b"#" * 255 + b"\n")  # 256 bytes: a YAML comment
    assert r.status == 400 and r.json()["code"] == "invalid_config"  # read, then judged
    await c.close()


async def test_oversized_head_is_431(small: AdminServer) -> None:
    c = await Client.connect(small.port)
    r = await c.request("GET", "/healthz", headers={"X-Big": "a" * 3000})
    assert r.status == 431 and r.json()["code"] == "headers_too_large"
    assert await c.closed_by_server()
    await c.close()


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /config HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
])
async def test_malformed_or_ambiguous_framing_is_400_and_close(
    server: AdminServer, raw: bytes
) -> None:
    c = await Client.connect(server.port)
    await c.send_raw(raw)
    r = await c.read_response()
    body = r.json()
    assert r.status == 400 and body["code"] == "bad_request" and body["request_id"]
    assert await c.closed_by_server()
    await c.close()


async def test_requests_before_a_framing_error_are_still_answered(server: AdminServer) -> None:
    c = await Client.connect(server.port)
    await c.send_raw(encode_request("GET", "/healthz") + b"BROKEN\r\n\r\n")
    assert (await c.read_response()).status == 200
    assert (await c.read_response()).status == 400
    assert await c.closed_by_server()
    await c.close()


async def test_upgrade_requests_are_refused(server: AdminServer) -> None:
    c = await Client.connect(server.port)
    await c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\n")
    r = await c.read_response()
    assert r.status == 501 and r.json()["code"] == "not_implemented"
    assert "Upgrade: websocket" in r.json()["detail"]
    assert await c.closed_by_server()
    await c.close()


async def test_idle_keep_alive_connection_is_closed(small: AdminServer) -> None:
    c = await Client.connect(small.port)
    assert (await c.request("GET", "/healthz")).status == 200
    t0 = asyncio.get_running_loop().time()
    assert await c.closed_by_server()
    assert 0.2 < asyncio.get_running_loop().time() - t0 < 2
    await c.close()


async def test_half_closed_client_still_gets_its_answer(
    server: AdminServer, backend: MemoryBackend
) -> None:
    backend.apply_delay = 0.05
    c = await Client.connect(server.port)
    await c.send_raw(encode_request("POST", "/config", GOOD_SMALL.encode()))
    c.writer.write_eof()
    r = await c.read_response()
    assert r.status == 200 and await c.closed_by_server()
    await c.close()


def test_non_finite_numbers_become_null() -> None:
    data = json.loads(json_bytes({"a": float("nan"), "b": [float("inf"), 1.5], "c": (2,)}))
    assert data == {"a": None, "b": [None, 1.5], "c": [2]}
