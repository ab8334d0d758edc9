"""Figure 1 of benchmarks/devices.py: bytes per device per second and update -> device time,
delta sync against full-state sync, on a fleet workload.

The workload: DEVICES HVAC controllers (the ~60-field document of devices_kit), each
receiving a desired change of one or two fields from a cloud application (through another
gateway than the device's) every `change_every` seconds, applying it and reporting it back,
and sending a telemetry reading every `telemetry_every` seconds. Measured per change:

- delta sync over MQTT: the `.../update/delta` PUBLISH the device receives (+ its PUBACK);
  the report back is an update PUBLISH and its `accepted` reply;
- delta sync over HTTP: the long poll `GET .../delta?version=N&wait=10` the device holds,
  request and answer with heads; the report back is a PATCH of the changed fields (whose
  answer is the whole document);
- full-state sync: a `GET` of the whole document per change (notified by the long poll, whose
  bytes are not counted against it); the report back is a PATCH of the whole reported state.

Update -> device has it: from the moment the application sends its PATCH until the delta
message arrives (MQTT), the long poll answers, or the full GET after the long poll answers.
The changes run at a compressed pace (a think time of 0 to 2 x `pace` seconds before each
change of a device) to gather samples in seconds; the aggregate rate is printed with the
times. Bytes per second scale the measured sizes to the stated shape.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from devices_kit import (
    PREFIX,
    PUBACK_BYTES,
    Answer,
    Conn,
    device_document,
    ms,
    publish_bytes,
    telemetry_reading,
)

from edgeward.devices.mqtt_bridge import NODELAY

DEVICES = 30


@dataclass
class Costs:
    """Measured per change (bytes, seconds) and per telemetry message (bytes)."""
    latency: list[float] = field(default_factory=list)
    down: list[int] = field(default_factory=list)      # to the device per change
    report: list[int] = field(default_factory=list)    # the device's report back per change
    telemetry: list[int] = field(default_factory=list)

    def per_second(self, change_every: float, telemetry_every: float) -> tuple[float, float]:
        """(bytes/s to the device, bytes/s in all) for one device of the shape."""
        down = statistics.mean(self.down) / change_every
        report = statistics.mean(self.report) / change_every
        return down, down + report + statistics.mean(self.telemetry) / telemetry_every


def change_for(rng: random.Random, i: int) -> dict[str, Any]:
    change: dict[str, Any] = {"zones": {f"zone{rng.randrange(6)}": {"setpoint_c": 15 + i / 8}}}
    if rng.random() < 0.3:
        change["telemetry"] = {"interval_s": 30 + i}
    return change


async def seed(port: int, devices: list[str]) -> dict[str, int]:
    """Every device's shadow with desired = reported = the document: no delta. Versions."""
    conn = Conn(port)
    out = {}
    for n, device in enumerate(devices):
        doc = device_document(random.Random(n))
        ans = await conn.call("PATCH", f"/devices/{device}/shadow",
                              {"state": {"reported": doc, "desired": doc}})
        assert ans.status == 200, ans
        out[device] = ans.json()["version"]
    conn.close()
    return out


async def _timed(call: Any) -> tuple[Answer, float]:
    answer = await call
    return answer, time.perf_counter()


# -- MQTT ----------------------------------------------------------------------------------

async def mqtt_sync(ports: list[int], broker: int, changes: int, pace: float) -> Costs:
    devices = [f"fleet-m{n}" for n in range(DEVICES)]
    await seed(ports[0], devices)
    costs = Costs()
    inbox = {d: asyncio.Queue[tuple[str, bytes, float]]() for d in devices}
    async with aiomqtt.Client("127.0.0.1", broker, identifier="bench-fleet",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=NODELAY) as client:
        for suffix in ("shadow/update/delta", "shadow/update/accepted", "telemetry/accepted"):
            await client.subscribe(f"{PREFIX}/+/{suffix}", qos=1)

        async def receive() -> None:
            async for msg in client.messages:
                payload = msg.payload
                assert isinstance(payload, bytes)
                device = msg.topic.value[len(PREFIX) + 1:].split("/", 1)[0]
                if device in inbox:
                    inbox[device].put_nowait((msg.topic.value, payload, time.perf_counter()))

        receiver = asyncio.get_running_loop().create_task(receive())
        try:
            await asyncio.gather(*(
                _mqtt_device(client, Conn(ports[(n + 1) % len(ports)]), d, inbox[d],
                             changes, pace, costs, random.Random(n))
                for n, d in enumerate(devices)))
        finally:
            receiver.cancel()
    return costs


async def _next(queue: asyncio.Queue[tuple[str, bytes, float]], suffix: str,
                ok: Any) -> tuple[str, bytes, float]:
    while True:
        topic, payload, t = await asyncio.wait_for(queue.get(), 10)
        if topic.endswith(suffix) and ok(json.loads(payload)):
            return topic, payload, t


async def _mqtt_device(client: aiomqtt.Client, cloud: Conn, device: str,
                       queue: asyncio.Queue[tuple[str, bytes, float]], changes: int,
                       pace: float, costs: Costs, rng: random.Random) -> None:
    path = f"/devices/{device}/shadow"
    for i in range(changes):
        await asyncio.sleep(rng.random() * 2 * pace)
        change = change_for(rng, i)
        start = time.perf_counter()
        ans = await cloud.call("PATCH", path, {"state": {"desired": change}})
        version = ans.json()["version"]
        topic, payload, t = await _next(queue, "/update/delta",
                                        lambda d, v=version: d["version"] >= v)
        costs.latency.append(t - start)
        costs.down.append(publish_bytes(topic, payload) + PUBACK_BYTES)
        token = f"{device}-{i}"
        body = json.dumps({"state": {"reported": change}, "clientToken": token})
        update = f"{PREFIX}/{device}/shadow/update"
        await client.publish(update, body, qos=1)
        topic, payload, _ = await _next(queue, "/update/accepted",
                                        lambda d, k=token: d.get("clientToken") == k)
        costs.report.append(publish_bytes(update, body) + publish_bytes(topic, payload)
                            + 2 * PUBACK_BYTES)
    reading = json.dumps(telemetry_reading(rng, f"{device}-t"))
    where = f"{PREFIX}/{device}/telemetry"
    await client.publish(where, reading, qos=1)
    topic, payload, _ = await _next(queue, "/telemetry/accepted", lambda d: True)
    costs.telemetry.append(publish_bytes(where, reading) + publish_bytes(topic, payload)
                           + 2 * PUBACK_BYTES)
    cloud.close()


# -- HTTP: long poll (delta) and full GET ----------------------------------------------------

async def http_sync(ports: list[int], changes: int, pace: float) -> tuple[Costs, Costs]:
    devices = [f"fleet-h{n}" for n in range(DEVICES)]
    versions = await seed(ports[0], devices)
    delta, full = Costs(), Costs()
    await asyncio.gather(*(
        _http_device(Conn(ports[n % len(ports)]), Conn(ports[(n + 1) % len(ports)]), d,
                     versions[d], changes, pace, delta, full, random.Random(n))
        for n, d in enumerate(devices)))
    return delta, full


async def _http_device(conn: Conn, cloud: Conn, device: str, version: int, changes: int,
                       pace: float, delta: Costs, full: Costs, rng: random.Random) -> None:
    path = f"/devices/{device}/shadow"
    poller = Conn(conn.port)   # the device's long poll, beside its request connection
    for i in range(changes):
        poll = asyncio.get_running_loop().create_task(
            _timed(poller.call("GET", f"{path}/delta?version={version}&wait=10")))
        await asyncio.sleep(rng.random() * 2 * pace)
        change = change_for(rng, i)
        start = time.perf_counter()
        ans = await cloud.call("PATCH", path, {"state": {"desired": change}})
        got, t = await poll
        assert got.json()["delta"] and got.json()["version"] >= ans.json()["version"], got
        delta.latency.append(t - start)
        delta.down.append(got.sent + got.received)
        whole = await conn.call("GET", path)
        full.latency.append(time.perf_counter() - start)
        full.down.append(whole.sent + whole.received)
        report = await conn.call("PATCH", path, {"state": {"reported": change}})
        delta.report.append(report.sent + report.received)
        version = report.json()["version"]
    reported = (await conn.call("GET", path)).json()["state"]["reported"]
    report = await conn.call("PATCH", path, {"state": {"reported": reported}})
    full.report.append(report.sent + report.received)
    reading = telemetry_reading(rng, f"{device}-t")
    sent = await conn.call("POST", f"/devices/{device}/telemetry", reading,
                           {"idempotency-key": reading["id"]})
    delta.telemetry.append(sent.sent + sent.received)
    full.telemetry.append(sent.sent + sent.received)
    for c in (conn, cloud, poller):
        c.close()


# -- the figure ----------------------------------------------------------------------------

async def figure(ports: list[int], broker: int, changes: int, pace: float,
                 change_every: float, telemetry_every: float) -> list[str]:
    start = time.perf_counter()
    mqtt = await mqtt_sync(ports, broker, changes, pace)
    middle = time.perf_counter()
    poll, full = await http_sync(ports, changes, pace)
    rate_mqtt = len(mqtt.latency) / (middle - start)
    rate_http = len(poll.latency) / (time.perf_counter() - middle)
    doc = device_document(random.Random(0))
    state = len(json.dumps({"desired": doc, "reported": doc}, separators=(",", ":")))
    rates = {name: c.per_second(change_every, telemetry_every)
             for name, c in (("mqtt", mqtt), ("poll", poll), ("full", full))}
    kb = {name: (down / 1000, total / 1000) for name, (down, total) in rates.items()}
    full_down_per_change = statistics.mean(full.down)
    seeds_every = full_down_per_change / 48_000
    mean = statistics.mean
    return [
        f"fleet shape: {DEVICES} devices per transport on {len(ports)} gateways, HVAC "
        f"document ({state} B of state); a desired change of 1-2 fields every "
        f"{change_every:g} s (reported back), a telemetry reading every {telemetry_every:g} s",
        f"bytes per change to the device: MQTT delta {mean(mqtt.down):.0f} B, HTTP long-poll "
        f"delta {mean(poll.down):.0f} B (heads included), full-state GET "
        f"{full_down_per_change:.0f} B",
        f"bytes per device per second to the device: MQTT delta {kb['mqtt'][0]:.2f} KB/s, "
        f"HTTP long poll {kb['poll'][0]:.2f} KB/s, full-state {kb['full'][0]:.2f} KB/s "
        f"({kb['full'][0] / kb['mqtt'][0]:.0f}x MQTT)",
        f"with report back and telemetry: MQTT {kb['mqtt'][1]:.2f} KB/s, HTTP delta "
        f"{kb['poll'][1]:.2f} KB/s (PATCH answers carry the whole document: "
        f"{mean(poll.report):.0f} B per report), full-state HTTP {kb['full'][1]:.2f} KB/s",
        f"update -> device has it ({len(mqtt.latency)} changes each, at {rate_mqtt:.0f} and "
        f"{rate_http:.0f} changes/s in all): MQTT delta {ms(mqtt.latency)}; HTTP long poll "
        f"{ms(poll.latency)}; full-state (long poll + GET) {ms(full.latency)}",
        f"seeds' 48 KB/s full sync = a change every {seeds_every:.2f} s with this document; "
        f"deltas at that rate: MQTT {mean(mqtt.down) / seeds_every / 1000:.2f} KB/s, HTTP "
        f"long poll {mean(poll.down) / seeds_every / 1000:.2f} KB/s (seeds: 1.2 KB/s)",
    ]
