"""Issue 18's low admin items: the admin API now runs on the gateway's own HTTP/1.1 codec.

Before: a POST with a wrong token was read to its end before the 401; an incomplete admin
request head was never timed out (the idle timer re-armed with every byte); there was no cap
on admin connections. Now the head alone decides a refusal (the body is never read and the
connection closes), a head must be complete within the head timeout, and connections beyond
`admin.max_connections` are closed as they arrive.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "admin"))
from adminkit import CONFIG, Client, MemoryBackend  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402
from edgeward.admin.wire import Limits  # noqa: E402


@pytest.fixture
async def backend() -> MemoryBackend:
    b = MemoryBackend()
    assert await b.apply_config(CONFIG) == []
    return b


@pytest.fixture
async def secured(backend: MemoryBackend) -> AsyncIterator[AdminServer]:
    srv = AdminServer(backend, token="s3cret",
                      limits=Limits(max_connections=3, head_timeout=0.5))
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


async def test_a_wrong_token_is_refused_before_the_body_is_read(
        secured: AdminServer, backend: MemoryBackend) -> None:
    c = await Client.connect(secured.port)
    # Announce a body and send none of it: the answer comes from the head alone.
    await c.send_raw(b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/yaml\r\nAuthorization: Bearer wrong\r\n"
                     b"Content-Length: 500000\r\n\r\n")
    r = await c.read_response()
    assert r.status == 401 and r.json()["code"] == "unauthorized"
    assert await c.closed_by_server()
    assert len(backend.applied_texts) == 1  # only the fixture's own config
    await c.close()


async def test_an_incomplete_head_is_timed_out(secured: AdminServer) -> None:
    c = await Client.connect(secured.port)
    await c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for _ in range(4):  # a byte at a time does not keep it alive
        await asyncio.sleep(0.1)
        await c.send_raw(b"X")
    r = await c.read_response()
    assert r.status == 408 and r.json()["code"] == "request_timeout"
    assert await c.closed_by_server()
    await c.close()


async def test_connections_beyond_the_cap_are_closed(secured: AdminServer) -> None:
    held = [await Client.connect(secured.port) for _ in range(3)]
    for c in held:
        assert (await c.request("GET", "/healthz")).status == 200
    extra = await Client.connect(secured.port)
    assert await extra.closed_by_server()
    await extra.close()
    await held[0].close()
    await asyncio.sleep(0.05)  # the server notices the close
    again = await Client.connect(secured.port)
    assert (await again.request("GET", "/healthz")).status == 200
    for c in [*held[1:], again]:
        await c.close()
