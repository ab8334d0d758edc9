"""Device WebSocket sessions end to end: two real gateway processes on one real redis-server,
a real WebSocket client (`websockets`), through the route's filter chain (key auth,
own_device_only)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.cluster._cluster import RedisServer, admin_port, gateways, http_get
from tests.devices._client import call
from tests.support.gateway import GatewayProcess
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

WAIT = 10.0


def config(redis_url: str) -> str:
    return (
        "listen: {listen}\nadmin: {admin}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        "devices: {shards: 4, stream_maxlen: 1000, max_pending_commands: 3,\n"
        "          session_rate_limit: {rate: 1/m, burst: 20}}\n"
        "consumers:\n  dev-1: {api_keys: [k-dev-1]}\n"
        "routes:\n"
        "  - name: own\n"
        "    match: {path_prefix: /own/}\n"
        "    devices: {own_device_only: true}\n"
        "    websocket: {max_tunnels: 50}\n"
        "    filters: [{api_key: {}}]\n"
        "  - name: plain\n"
        "    match: {path_prefix: /plain/}\n"
        "    devices: true\n"
        "  - name: api\n"
        "    match: {path_prefix: /}\n"
        "    devices: true\n"
        "    websocket: true\n"
    )


@pytest.fixture(scope="module")
def pair(redis: RedisServer) -> Iterator[list[GatewayProcess]]:
    text = config(redis.url)
    with gateways([text, text]) as gws:
        yield gws


@asynccontextmanager
async def device(port: int, path: str, headers: dict[str, str] | None = None
                 ) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://127.0.0.1:{port}{path}", additional_headers=headers,
                       open_timeout=WAIT, close_timeout=2) as ws:
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), WAIT)
    doc = json.loads(message)
    assert isinstance(doc, dict)
    return doc


async def ask(ws: ClientConnection, doc: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(doc))
    return await receive(ws)


async def test_deltas_go_one_at_a_time_and_coalesce_until_acknowledged(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    shadow = "/devices/ws-1/shadow"
    await call(b, "PATCH", shadow, {"state": {"desired": {"fan": 1}}})
    async with device(a, "/devices/ws-1/connect") as ws:
        first = await receive(ws)     # the delta as it is when the device connects
        assert first["type"] == "delta" and first["shadow"] == ""
        assert (first["version"], first["state"]) == (1, {"fan": 1})
        # Changes through the other gateway while the device has not acknowledged.
        await call(b, "PATCH", shadow, {"state": {"desired": {"fan": 2}}})
        await call(b, "PATCH", shadow, {"state": {"desired": {"mode": "eco"}}})
        await ws.send(json.dumps({"type": "ack", "shadow": "", "version": 1}))
        second = await receive(ws)    # the newest delta, not each change
        assert second["version"] == 3 and second["state"] == {"fan": 2, "mode": "eco"}
        await ws.send(json.dumps({"type": "ack", "shadow": "", "version": 3}))
        # A reported change that leaves desired alone sends nothing; the next desired does.
        await call(b, "PATCH", shadow, {"state": {"reported": {"fan": 2}}})
        await call(b, "PATCH", shadow, {"state": {"desired": {"fan": 4}}})
        third = await receive(ws)
        assert third["version"] == 5 and third["state"] == {"fan": 4, "mode": "eco"}


async def test_updates_gets_and_telemetry_over_the_session(
        pair: list[GatewayProcess]) -> None:
    a = pair[0].port
    async with device(a, "/devices/ws-2/connect") as ws:
        done = await ask(ws, {"type": "update", "state": {"reported": {"temp": 21}},
                              "clientToken": "t1"})
        assert (done["type"], done["op"], done["version"]) == ("accepted", "update", 1)
        assert done["outcome"] == "applied" and done["clientToken"] == "t1"
        got = await ask(ws, {"type": "get"})
        assert got["type"] == "accepted" and got["state"]["reported"] == {"temp": 21}
        stale = await ask(ws, {"type": "update", "version": 0,
                               "state": {"reported": {"temp": 22}}})
        assert (stale["type"], stale["code"], stale["error"]) == ("rejected", 409,
                                                                  "version_conflict")
        assert stale["current"]["version"] == 1
        named = await ask(ws, {"type": "update", "shadow": "cfg",
                               "state": {"reported": {"rate": 5}}})
        assert named["shadow"] == "cfg" and named["version"] == 1
        sent = {"type": "telemetry", "id": "m-1", "temp": 21.5}
        first = await ask(ws, sent)
        again = await ask(ws, sent)
        assert first["type"] == "telemetry_accepted" and first["stored"] is True
        assert again["stored"] is False and again["entry"] == first["entry"]
        bad = await ask(ws, {"type": "reboot"})
        assert (bad["type"], bad["error"]) == ("rejected", "invalid_message")
        junk = await ask(ws, {"type": "update", "shadow": "no/slash"})
        assert junk["error"] == "invalid_message"
    status, _, doc = await call(a, "GET", "/devices/ws-2/shadow")
    assert status == 200 and doc["state"]["reported"] == {"temp": 21}


async def test_an_unacknowledged_delta_comes_again_on_the_next_connection(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    async with device(a, "/devices/ws-3/connect?shadows=cfg,lights") as ws:
        await call(b, "PATCH", "/devices/ws-3/shadow/lights", {"state": {"desired": {"on": 1}}})
        got = await receive(ws)
        assert (got["shadow"], got["version"], got["state"]) == ("lights", 1, {"on": 1})
    async with device(b, "/devices/ws-3/connect?shadows=lights") as ws:
        again = await receive(ws)
        assert (again["shadow"], again["version"]) == ("lights", 1)
        await ws.send(json.dumps({"type": "ack", "shadow": "lights", "version": 1}))
        # Not followed: a named shadow the session did not ask for.
        await call(a, "PATCH", "/devices/ws-3/shadow/other", {"state": {"desired": {"x": 1}}})
        await call(a, "PATCH", "/devices/ws-3/shadow/lights", {"state": {"desired": {"on": 0}}})
        nxt = await receive(ws)
        assert (nxt["shadow"], nxt["version"]) == ("lights", 2)


async def test_a_second_connection_of_a_device_replaces_the_first(
        pair: list[GatewayProcess]) -> None:
    a = pair[0].port
    async with device(a, "/devices/ws-4/connect") as old:
        async with device(a, "/devices/ws-4/connect") as new:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(old.recv(), WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            done = await ask(new, {"type": "update", "state": {"reported": {"up": True}}})
            assert done["type"] == "accepted"
            # On another gateway: the announcement on the shard's sessions stream reaches
            # this one's change feed.
            async with device(pair[1].port, "/devices/ws-4/connect") as newest:
                with pytest.raises(ConnectionClosed) as elsewhere:
                    await asyncio.wait_for(new.recv(), WAIT)
                assert elsewhere.value.rcvd is not None and elsewhere.value.rcvd.code == 4000
                got = await ask(newest, {"type": "get"})
                assert got["state"]["reported"] == {"up": True}


async def test_the_route_filters_run_before_the_handshake(pair: list[GatewayProcess]) -> None:
    a = pair[0].port
    with pytest.raises(InvalidStatus) as no_key:
        async with device(a, "/own/devices/dev-1/connect"):
            pass
    assert no_key.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as other:
        async with device(a, "/own/devices/dev-2/connect", {"apikey": "k-dev-1"}):
            pass
    assert other.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as no_ws:   # the route has no `websocket:`
        async with device(a, "/plain/devices/dev-1/connect"):
            pass
    assert no_ws.value.response.status_code == 400
    async with device(a, "/own/devices/dev-1/connect", {"apikey": "k-dev-1"}) as ws:
        done = await ask(ws, {"type": "update", "seq": 5, "state": {"reported": {"ok": 1}}})
        assert done["type"] == "accepted"
        status, body = await asyncio.to_thread(http_get, admin_port(pair[0]), "/metrics")
        assert status == 200
        text = body.decode()
        assert "edgeward_device_sessions 1" in text
        assert 'edgeward_device_session_messages_total{kind="accepted"}' in text
    status, _, doc = await call(a, "GET", "/devices/dev-1/shadow")
    assert doc["state"]["reported"] == {"ok": 1}
    assert doc["version_vector"] == {"dev-1": 5}   # the consumer is the writer


async def test_long_polls_past_the_redis_pool_all_wait_on_the_one_change_feed(
        pair: list[GatewayProcess]) -> None:
    """150 long polls on one worker (redis-py's pool holds 100 connections): each waits on
    the worker's change feed, not on a Redis connection of its own."""
    a, b = pair[0].port, pair[1].port
    path = "/devices/ws-5/shadow"
    await call(b, "PATCH", path, {"state": {"desired": {"v": 0}}})
    polls = [asyncio.ensure_future(call(a, "GET", path + "/delta?version=1&wait=8"))
             for _ in range(150)]
    await asyncio.sleep(0.5)
    assert not any(p.done() for p in polls)
    await call(b, "PATCH", path, {"state": {"desired": {"v": 1}}})
    answers = await asyncio.gather(*polls)
    assert {(status, doc["version"]) for status, _, doc in answers} == {(200, 2)}


async def test_commands_wait_for_the_device_and_go_before_anything_else(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    base = "/devices/ws-6"
    await call(b, "PATCH", base + "/shadow", {"state": {"desired": {"fan": 1}}})
    status, _, first = await call(b, "POST", base + "/commands", {"op": "reboot"})
    assert status == 202
    async with device(a, base + "/connect") as ws:
        got = await receive(ws)       # the pending command before the delta
        assert got == {"type": "command", "id": first["id"], "command": {"op": "reboot"},
                       "timestamp": got["timestamp"]}
        assert (await receive(ws))["type"] == "delta"
        _, _, second = await call(b, "POST", base + "/commands", [1, 2])
        live = await receive(ws)
        assert (live["id"], live["command"]) == (second["id"], [1, 2])
        await ws.send(json.dumps({"type": "command_ack", "id": first["id"]}))
        bad = await ask(ws, {"type": "command_ack", "id": "nope"})
        assert bad["error"] == "invalid_message"
    _, _, doc = await call(a, "GET", base + "/commands")
    assert [c["id"] for c in doc["commands"]] == [second["id"]]
    async with device(b, base + "/connect") as ws:
        again = await receive(ws)     # not acknowledged: sent again on the next connection
        assert again["id"] == second["id"]
    status, _, _ = await call(a, "DELETE", f"{base}/commands/{second['id']}")
    assert status == 204
    status, _, gone = await call(a, "DELETE", f"{base}/commands/{second['id']}")
    assert (status, gone["code"]) == (404, "command_not_found")
    for _ in range(3):
        assert (await call(a, "POST", base + "/commands", {"n": 1}))[0] == 202
    status, _, full = await call(a, "POST", base + "/commands", {"n": 1})
    assert (status, full["code"]) == (429, "device_commands_exceeded")
    status, _, bad = await call(a, "POST", base + "/commands", b"{not json")
    assert (status, bad["code"]) == (400, "invalid_shadow_update")


async def test_a_session_over_its_rate_limit_is_rejected_429(
        pair: list[GatewayProcess]) -> None:
    async with device(pair[0].port, "/devices/ws-7/connect") as ws:
        answers = [await ask(ws, {"type": "get", "clientToken": i}) for i in range(22)]
    codes = [a.get("code") for a in answers]
    assert codes[:20] == [404] * 20          # admitted: the shadow does not exist yet
    assert codes[20:] == [429, 429]
    assert answers[21]["error"] == "rate_limited" and answers[21]["clientToken"] == 21
