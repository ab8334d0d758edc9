"""The shadow HTTP API end to end: two real gateway processes on one real redis-server.

Updates through either gateway converge on one shadow; If-Match conflicts answer 409 with the
current document; retries and reordered updates are suppressed; the long poll returns when
another gateway changes the shadow; every change is on the shard's Redis Stream; telemetry
resent with the same Idempotency-Key is stored once; key auth and own_device_only apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis as redis_sync
from tests.cluster._cluster import (
    RedisServer,
    admin_port,
    gateways,
    get_json,
    metric_value,
)
from tests.devices._client import call
from tests.devices._pair import config
from tests.support.gateway import GatewayProcess

from edgeward.devices.config import DevicesConfig
from edgeward.devices.http_api import parse_path
from edgeward.devices.store import ShadowStore


@pytest.fixture(scope="module")
def pair(redis: RedisServer) -> Iterator[list[GatewayProcess]]:
    text = config(redis.url, ("dev-1", "dev-2"), "{max_wait: 5s}")
    with gateways([text, text]) as gws:
        yield gws


def test_paths_name_device_shadow_and_resource() -> None:
    assert parse_path("/devices/d1/shadow") == ("d1", "", "shadow")
    assert parse_path("/x/devices/d1/shadow/cfg/delta") == ("d1", "cfg", "delta")
    assert parse_path("/devices/d1/shadow/delta") == ("d1", "", "delta")
    assert parse_path("/devices/d1/telemetry") == ("d1", "", "telemetry")
    assert parse_path("/devices/d 1/shadow") is None
    assert parse_path("/devices/d1/shadow/a/b") is None


async def test_two_gateways_converge_on_one_shadow(pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/thermo-1/shadow"
    status, _, _ = await call(a, "GET", path)
    assert status == 404
    updates = [(a if i % 2 else b, {"state": {"reported": {f"s{i}": i}}}) for i in range(12)]
    results = await asyncio.gather(*(call(p, "PATCH", path, u) for p, u in updates))
    assert all(s == 200 for s, _, _ in results)
    status, head, doc = await call(b, "GET", path)
    assert doc["state"]["reported"] == {f"s{i}": i for i in range(12)}
    assert doc["version"] == 12 and head["etag"] == '"12"'
    assert sorted(r[2]["version"] for r in results) == list(range(1, 13))


async def test_if_match_mismatch_is_409_with_the_current_document(
        pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    path = "/devices/lamp/shadow/config"
    _, _, first = await call(port, "PATCH", path, {"state": {"desired": {"led": "on"}}})
    status, _, doc = await call(port, "PATCH", path, {"state": {"desired": {"led": "off"}}},
                                {"if-match": '"7"'})
    assert status == 409 and doc["code"] == "version_conflict"
    assert doc["current"]["state"]["desired"] == {"led": "on"}
    assert doc["current"]["version"] == first["version"]
    status, _, doc = await call(port, "PATCH", path, {"state": {"desired": {"led": "off"}}},
                                {"if-match": f'"{first["version"]}"'})
    assert status == 200 and doc["state"]["desired"] == {"led": "off"}


async def test_prefer_return_minimal_leaves_the_document_out(
        pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    path = "/devices/lamp-2/shadow"
    await call(port, "PATCH", path, {"state": {"desired": {"led": "on", "fan": 2}}})
    status, headers, doc = await call(port, "PATCH", path, {"state": {"reported": {"led": "on"}}},
                                      {"prefer": "respond-async, return=minimal"})
    assert status == 200 and headers["preference-applied"] == "return=minimal"
    assert doc == {"version": 2, "clock": doc["clock"], "outcome": "applied",
                   "suppressed": []}
    assert headers["etag"] == '"2"'


async def test_retries_and_reordered_updates_are_suppressed(pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/meter/shadow"
    newer = {"writer": "meter", "seq": 5, "state": {"reported": {"kwh": 12}}}
    older = {"writer": "meter", "seq": 4, "state": {"reported": {"kwh": 11}}}
    assert (await call(a, "PATCH", path, newer))[2]["outcome"] == "applied"
    retry = (await call(b, "PATCH", path, newer))[2]
    assert retry["outcome"] == "duplicate" and retry["version"] == 1
    late = (await call(a, "PATCH", path, older))[2]
    assert late["outcome"] == "stale" and late["suppressed"] == ["reported.kwh"]
    assert late["state"]["reported"] == {"kwh": 12}


async def test_long_poll_returns_the_delta_another_gateway_caused(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/valve/shadow"
    await call(a, "PATCH", path, {"state": {"reported": {"open": False}}})
    poll = asyncio.ensure_future(call(a, "GET", path + "/delta?version=1&wait=5"))
    await asyncio.sleep(0.2)  # let the poll block (a change before it would end it too)
    assert not poll.done()
    await call(b, "PATCH", path, {"state": {"desired": {"open": True}}})
    status, _, doc = await poll
    assert status == 200 and doc["version"] == 2 and doc["delta"] == {"open": True}


async def test_every_change_is_on_the_shards_stream(pair: list[GatewayProcess],
                                                    redis: RedisServer) -> None:
    port = pair[1].port
    path = "/devices/stream-me/shadow"
    await call(port, "PATCH", path, {"state": {"desired": {"x": 1}}})
    await call(port, "DELETE", path)
    store = ShadowStore(None, DevicesConfig(shards=4))
    client = redis_sync.Redis.from_url(redis.url)
    entries = client.xrange(store.changes_key("stream-me"))
    mine = [f for _, f in entries if f[b"device"] == b"stream-me"]
    assert [f[b"version"] for f in mine] == [b"1", b"2"]
    assert b'"kind":"delete"' in mine[1][b"event"]
    status, _, doc = await call(port, "GET", path)
    assert doc["state"] == {"desired": {}, "reported": {}}


async def test_telemetry_resent_with_one_key_is_stored_once(pair: list[GatewayProcess],
                                                           redis: RedisServer) -> None:
    a, b = pair[0].port, pair[1].port
    path = "/devices/probe/telemetry"
    sends = [call(p, "POST", path, {"t": 21.5}, {"idempotency-key": "m-1"}) for p in (a, b, a)]
    results = await asyncio.gather(*sends)
    assert sorted(s for s, _, _ in results) == [200, 200, 202]
    assert len({d["id"] for _, _, d in results}) == 1
    store = ShadowStore(None, DevicesConfig(shards=4))
    client = redis_sync.Redis.from_url(redis.url)
    assert client.xlen(store.telemetry_key("probe")) == 1


async def test_bad_updates_get_precise_errors(pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    path = "/devices/bad/shadow"
    status, _, doc = await call(port, "PATCH", path, b"{not json")
    assert (status, doc["code"]) == (400, "invalid_shadow_update")
    status, _, doc = await call(port, "PATCH", path, {"state": {"desired": 3}})
    assert (status, doc["code"]) == (400, "invalid_shadow_update")
    big = {"state": {"desired": {"blob": "x" * 9000}}}
    status, _, doc = await call(port, "PATCH", path, big)
    assert (status, doc["code"]) == (413, "shadow_too_large")
    status, head, doc = await call(port, "PUT", path, {"state": {}})
    assert (status, doc["code"]) == (405, "method_not_allowed")


async def test_own_device_only_lets_a_device_touch_only_its_shadow(
        pair: list[GatewayProcess]) -> None:
    port = pair[0].port
    body = {"state": {"reported": {"up": True}}}
    status, _, _ = await call(port, "PATCH", "/own/devices/dev-1/shadow", body,
                              {"apikey": "k-dev-1"})
    assert status == 200
    status, _, doc = await call(port, "PATCH", "/own/devices/dev-1/shadow", body,
                                {"apikey": "k-dev-2"})
    assert (status, doc["code"]) == (403, "forbidden")
    status, _, doc = await call(port, "GET", "/own/devices/dev-1/shadow")
    assert status == 401


async def test_metrics_count_outcomes_and_the_openapi_document_is_served(
        pair: list[GatewayProcess]) -> None:
    gw = pair[0]
    path = "/devices/counted/shadow"
    update = {"writer": "w", "seq": 1, "state": {"reported": {"n": 1}}}
    await call(gw.port, "PATCH", path, update)
    await call(gw.port, "PATCH", path, update)
    admin = admin_port(gw)
    assert metric_value(admin, "edgeward_device_shadow_updates_total",
                        'outcome="applied"') >= 1
    assert metric_value(admin, "edgeward_device_shadow_updates_total",
                        'outcome="duplicate"') >= 1
    doc = get_json(admin, "/openapi/devices.json")
    assert isinstance(doc, dict) and "/devices/{device}/shadow" in doc["paths"]
    # Every path the API answers is described.
    assert {"/devices/{device}/connect", "/devices/{device}/commands",
            "/devices/{device}/commands/{command}"} <= set(doc["paths"])
