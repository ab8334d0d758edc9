"""Delta streams end to end: server-sent events from two real gateway processes on one real
redis-server, through the route's filter chain (key auth, own_device_only)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import pytest
from tests.cluster._cluster import RedisServer, gateways
from tests.devices._client import call
from tests.devices._pair import config
from tests.devices._sse import EventStream
from tests.support.gateway import GatewayProcess

API = "{max_wait: 5s, heartbeat: 0.3s, max_streams: 2}"


@pytest.fixture(scope="module")
def pair(redis: RedisServer) -> Iterator[list[GatewayProcess]]:
    text = config(redis.url, ("dev-1",), API)
    with gateways([text, text]) as gws:
        yield gws


async def test_sse_streams_each_change_with_its_version_as_id(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/sse-1/shadow"
    await call(a, "PATCH", path, {"state": {"reported": {"fan": 1}}})
    stream = await EventStream.open(a, path + "/delta")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        first = await stream.next_event()
        assert (first["event"], first["id"]) == ("delta", "1")
        await call(b, "PATCH", path, {"state": {"desired": {"fan": 3}}})
        second = await stream.next_event()
        assert second["id"] == "2" and json.loads(second["data"])["delta"] == {"fan": 3}
        await call(b, "PATCH", path, {"state": {"reported": {"fan": 3}}})
        third = await stream.next_event()
        assert third["id"] == "3" and json.loads(third["data"])["delta"] == {}
    finally:
        stream.close()


async def test_last_event_id_resumes_and_heartbeats_keep_an_idle_stream(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/sse-2/shadow/cfg"
    for i in range(3):
        await call(a, "PATCH", path, {"state": {"desired": {"rate": i}}})
    stream = await EventStream.open(b, path + "/delta", {"last-event-id": "3"})
    try:
        blocks = [await stream.next() for _ in range(3)]
        assert all("event" not in blk for blk in blocks)  # nothing past version 3
        assert {"comment": "heartbeat"} in blocks
        await call(a, "PATCH", path, {"state": {"desired": {"rate": 9}}})
        got = await stream.next_event()
        assert got["id"] == "4" and json.loads(got["data"])["delta"] == {"rate": 9}
    finally:
        stream.close()


async def test_streams_per_device_are_bounded_and_freed(pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    path = "/devices/sse-3/shadow/delta"
    first = await EventStream.open(port, path)
    second = await EventStream.open(port, path)
    await first.next()
    await second.next()
    third = await EventStream.open(port, path)
    assert (third.status, third.json()["code"]) == (429, "device_streams_exceeded")
    third.close()
    first.close()
    for _ in range(50):  # the gateway notices the close at its next write (a heartbeat)
        again = await EventStream.open(port, path)
        if again.status == 200:
            again.close()
            break
        again.close()
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the closed stream was never freed")
    second.close()


async def test_streams_go_through_the_routes_filters(pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    path = "/own/devices/dev-1/shadow/delta"
    refused = await EventStream.open(port, path)
    assert refused.status == 401
    refused.close()
    other = await EventStream.open(port, "/own/devices/dev-2/shadow/delta",
                                   {"apikey": "k-dev-1"})
    assert (other.status, other.json()["code"]) == (403, "forbidden")
    other.close()
    mine = await EventStream.open(port, path, {"apikey": "k-dev-1"})
    try:
        assert mine.status == 200
        assert (await mine.next())["retry"] == "1000"
    finally:
        mine.close()


async def test_a_draining_gateway_ends_its_streams_cleanly(redis: RedisServer) -> None:
    text = config(redis.url, ("dev-1",), "{max_wait: 5s, heartbeat: 30s, max_streams: 2}")
    with gateways([text]) as (gw,):
        stream = await EventStream.open(gw.port, "/devices/sse-4/shadow/delta")
        try:
            assert (await stream.next())["retry"] == "1000"
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            # Within the one-second wait slice, not the 30 s heartbeat: the chunked body ends.
            assert await stream.next(timeout=5) == {} and stream.ended
        finally:
            stream.close()
        assert await asyncio.to_thread(gw.wait, 10) == 0
