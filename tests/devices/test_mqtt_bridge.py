"""The MQTT bridge end to end: a real mosquitto, a real redis-server, two gateway processes
sharing the shadow topics (an MQTT 5 shared subscription) and the delta stream (one Redis
consumer group), and a device simulated with aiomqtt."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomqtt
import pytest
import redis as redis_sync
from tests.cluster._cluster import RedisServer, gateways
from tests.devices._client import call
from tests.support.gateway import GatewayProcess
from tests.support.mosquitto import Mosquitto

from edgeward.devices.config import DevicesConfig, MqttConfig
from edgeward.devices.mqtt_bridge import NODELAY, Topic, parse_topic, subscriptions
from edgeward.devices.store import ShadowStore

PREFIX = "edgeward/things"
WAIT = 10.0


def config(redis_url: str, broker: int) -> str:
    return (
        "listen: {listen}\n"
        f"redis: {{url: '{redis_url}', timeout: 1s}}\n"
        f"devices: {{shards: 2, mqtt: {{port: {broker}, "
        "claim_idle: 1.5s, rate_limit: {rate: 1/m, burst: 20, scope: global}}}\n"
        "routes:\n"
        "  - {match: {path_prefix: /}, devices: true}\n"
    )


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    server = Mosquitto().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def pair(redis: RedisServer, broker: Mosquitto) -> Iterator[list[GatewayProcess]]:
    with gateways([config(redis.url, broker.port)] * 2) as gws:
        # Both bridges subscribed and reading the delta stream: two consumers in the group.
        client = redis_sync.Redis.from_url(redis.url)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                groups = client.xinfo_consumers("edgeward:dev:{0}:changes", "edgeward:dev:mqtt")
            except redis_sync.ResponseError:
                groups = []
            if len(groups) == 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the bridges did not start: " + gws[0].stderr_text())
        yield gws


class Device:
    """A device on the broker: subscribed to its shadow and telemetry replies."""

    def __init__(self, client: aiomqtt.Client, device: str) -> None:
        self.client = client
        self.base = f"{PREFIX}/{device}"
        self.got: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            await self.got.put((message.topic.value, json.loads(payload)))

    async def send(self, suffix: str, doc: object) -> None:
        await self.client.publish(f"{self.base}/{suffix}", json.dumps(doc), qos=1)

    async def expect_any(self, *suffixes: str) -> tuple[str, Any]:
        wanted = {f"{self.base}/{s}" for s in suffixes}
        async with asyncio.timeout(WAIT):
            while True:
                topic, doc = await self.got.get()
                if topic in wanted:
                    return topic, doc

    async def expect(self, suffix: str) -> Any:
        async with asyncio.timeout(WAIT):
            while True:
                topic, doc = await self.got.get()
                if topic == f"{self.base}/{suffix}":
                    return doc


@pytest.fixture
async def device(broker: Mosquitto, request: pytest.FixtureRequest) -> AsyncIterator[Device]:
    name = request.node.name.split("[")[0].removeprefix("test_")[:40].replace("_", "-")
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=name,
                              protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=NODELAY) as client:
        dev = Device(client, name)
        await client.subscribe(f"{dev.base}/#", qos=1)
        task = asyncio.ensure_future(dev.pump())
        try:
            yield dev
        finally:
            task.cancel()


def test_topics_parse_as_aws_iot_names_them() -> None:
    assert parse_topic(f"{PREFIX}/d1/shadow/update", PREFIX) == Topic("d1", "", "update")
    assert parse_topic(f"{PREFIX}/d1/shadow/name/cfg/get", PREFIX) == Topic("d1", "cfg", "get")
    assert parse_topic(f"{PREFIX}/d1/telemetry", PREFIX) == Topic("d1", "", "telemetry")
    assert parse_topic(f"{PREFIX}/d1/commands/ack", PREFIX) == Topic("d1", "", "command_ack")
    assert parse_topic(f"{PREFIX}/d1/commands", PREFIX) is None
    assert parse_topic(f"{PREFIX}/d1/shadow/update/accepted", PREFIX) is None
    assert subscriptions(MqttConfig())[0] == f"$share/edgeward/{PREFIX}/+/shadow/update"


async def test_an_update_is_accepted_with_the_client_token(
        pair: list[GatewayProcess], device: Device) -> None:
    await device.send("shadow/update", {"state": {"reported": {"temp": 21}},
                                        "clientToken": "t-1"})
    doc = await device.expect("shadow/update/accepted")
    assert doc["clientToken"] == "t-1" and doc["version"] == 1
    assert doc["state"] == {"reported": {"temp": 21}}
    assert "temp" in doc["metadata"]["reported"]
    # The next accepted carries the metadata of its own fields only (AWS IoT's), not the
    # whole shadow's.
    await device.send("shadow/update", {"state": {"reported": {"hum": 40}},
                                        "clientToken": "t-1b"})
    doc = await device.expect("shadow/update/accepted")
    assert doc["clientToken"] == "t-1b" and list(doc["metadata"]) == ["reported"]
    assert list(doc["metadata"]["reported"]) == ["hum"]
    await device.send("shadow/get", {"clientToken": "t-2"})
    got = await device.expect("shadow/get/accepted")
    assert got["state"]["reported"] == {"temp": 21, "hum": 40} and got["clientToken"] == "t-2"


async def test_desired_changes_over_http_reach_the_device_once_as_deltas(
        pair: list[GatewayProcess], device: Device) -> None:
    path = f"/devices/{device.base.rsplit('/', 1)[1]}/shadow/config"
    for i, port in enumerate((pair[0].port, pair[1].port, pair[0].port)):
        status, _, _ = await call(port, "PATCH", path, {"state": {"desired": {"rate": i}}})
        assert status == 200
    versions = []
    while not versions or versions[-1] < 3:
        doc = await device.expect("shadow/name/config/update/delta")
        versions.append(doc["version"])
    assert doc["state"] == {"rate": 2}
    assert versions == sorted(set(versions))  # no delta twice, none out of order


async def test_a_dead_gateways_unacknowledged_delta_is_claimed_and_published(
        pair: list[GatewayProcess], device: Device, redis: RedisServer) -> None:
    """An entry delivered to a consumer that never acknowledges it (a gateway that died) is
    taken over after claim_idle by a live bridge (XAUTOCLAIM), published and acknowledged."""
    name = device.base.rsplit("/", 1)[1]
    client = redis_sync.Redis.from_url(redis.url)
    stream = ShadowStore(None, DevicesConfig(shards=2)).changes_key(name)
    event = {"kind": "update", "version": 41, "writer": "app", "timestamp": 1.0,
             "state": {"desired": {"mode": "eco"}}, "delta": {"mode": "eco"}}
    # Atomically: no live bridge reads the entry before the dead consumer has it pending.
    pipe = client.pipeline(transaction=True)
    pipe.xadd(stream, {"device": name, "shadow": "", "version": "41",
                       "event": json.dumps(event)})
    pipe.xreadgroup("edgeward:dev:mqtt", "dead-gateway", {stream: ">"}, count=100)
    entry_id, taken = pipe.execute()
    assert [e for _, entries in taken for e, _ in entries] == [entry_id]
    doc = await device.expect("shadow/update/delta")
    assert (doc["version"], doc["state"]) == (41, {"mode": "eco"})
    deadline = time.monotonic() + WAIT
    while client.xpending_range(stream, "edgeward:dev:mqtt", entry_id, entry_id, 1):
        assert time.monotonic() < deadline, "the claimed entry was never acknowledged"
        await asyncio.sleep(0.05)


async def test_commands_reach_the_device_and_its_acknowledgement_clears_them(
        pair: list[GatewayProcess], device: Device) -> None:
    name = device.base.rsplit("/", 1)[1]
    status, _, sent = await call(pair[1].port, "POST", f"/devices/{name}/commands",
                                 {"op": "reboot", "delay_s": 5})
    assert status == 202
    got = await device.expect("commands")
    assert got["id"] == sent["id"] and got["command"] == {"op": "reboot", "delay_s": 5}
    await device.send("commands/ack", {"id": got["id"]})
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        _, _, doc = await call(pair[0].port, "GET", f"/devices/{name}/commands")
        if doc["commands"] == []:
            break
        await asyncio.sleep(0.05)
    assert doc["commands"] == []


async def test_bad_and_conflicting_updates_are_rejected(
        pair: list[GatewayProcess], device: Device) -> None:
    await device.send("shadow/update", {"state": {"desired": 5}, "clientToken": "bad"})
    doc = await device.expect("shadow/update/rejected")
    assert (doc["code"], doc["error"], doc["clientToken"]) == (400, "invalid_shadow_update",
                                                               "bad")
    await device.send("shadow/update", {"state": {"reported": {"a": 1}}})
    await device.expect("shadow/update/accepted")
    await device.send("shadow/update", {"state": {"reported": {"a": 2}}, "version": 9})
    doc = await device.expect("shadow/update/rejected")
    assert (doc["code"], doc["error"]) == (409, "version_conflict")
    assert doc["current"]["state"]["reported"] == {"a": 1}
    await device.send("shadow/name/none/get", {})
    doc = await device.expect("shadow/name/none/get/rejected")
    assert (doc["code"], doc["error"]) == (404, "shadow_not_found")


async def test_telemetry_resent_is_stored_once(pair: list[GatewayProcess], device: Device,
                                               redis: RedisServer) -> None:
    for _ in range(3):
        await device.send("telemetry", {"id": "m-7", "kwh": 3.5})
    acks = [await device.expect("telemetry/accepted") for _ in range(3)]
    assert sorted(a["stored"] for a in acks) == [False, False, True]
    assert len({a["entry"] for a in acks}) == 1
    client = redis_sync.Redis.from_url(redis.url)
    entries = [f for k in client.keys("edgeward:dev:*:telemetry")
               for _, f in client.xrange(k)
               if f[b"device"] == device.base.rsplit("/", 1)[1].encode()]
    assert len(entries) == 1 and json.loads(entries[0][b"payload"])["kwh"] == 3.5


async def test_a_device_over_its_rate_limit_is_rejected_429(
        pair: list[GatewayProcess], device: Device) -> None:
    # burst 20 a minute, global: the two gateways share one budget per device in Redis.
    for i in range(24):
        await device.send("shadow/update", {"state": {"reported": {"i": i}},
                                            "clientToken": str(i)})
    replies = [await device.expect_any("shadow/update/accepted", "shadow/update/rejected")
               for _ in range(24)]
    refused = [doc for topic, doc in replies if topic.endswith("rejected")]
    assert len(refused) == 4
    assert all((doc["code"], doc["error"]) == (429, "rate_limited") for doc in refused)


async def test_the_bridges_reconnect_after_the_broker_restarts(
        pair: list[GatewayProcess], broker: Mosquitto) -> None:
    broker.stop()
    broker.start()  # the same port; the gateways reconnect on their own
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="after-restart",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=NODELAY) as client:
        dev = Device(client, "after-restart")
        await client.subscribe(f"{dev.base}/#", qos=1)
        task = asyncio.ensure_future(dev.pump())
        try:
            async with asyncio.timeout(WAIT):
                while True:  # until a bridge is subscribed again
                    await dev.send("shadow/get", {})
                    try:
                        async with asyncio.timeout(0.3):
                            await dev.expect("shadow/get/rejected")
                        break
                    except TimeoutError:
                        continue
            await dev.send("shadow/update", {"state": {"reported": {"back": True}}})
            assert (await dev.expect("shadow/update/accepted"))["version"] == 1
            status, _, _ = await call(pair[1].port, "PATCH", "/devices/after-restart/shadow",
                                      {"state": {"desired": {"back": False}}})
            assert status == 200
            delta = await dev.expect("shadow/update/delta")
            assert delta["state"] == {"back": False} and delta["version"] == 2
        finally:
            task.cancel()
