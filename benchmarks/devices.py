"""Device gateway figures on loopback, bounded (about 20 s): one gateway process, one real
redis-server, one real mosquitto.

1. Shadow update latency, p50/p99: HTTP PATCH on a keep-alive connection until the 200, and
   MQTT publish to .../shadow/update until .../update/accepted arrives; sequential, one device.
2. Bytes per change: a realistic device document (a building HVAC controller: ~60 fields,
   ~2 KB), with one or two desired fields changed per step; the delta message the device
   receives over MQTT against the full document a full-state sync would send (GET).

    .venv/bin/python benchmarks/devices.py [--updates 300] [--changes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt  # noqa: E402
from tests.cluster._cluster import gateways, redis_server  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

from edgeward.devices.mqtt_bridge import NODELAY  # noqa: E402

PREFIX = "edgeward/things"


def device_document(rng: random.Random) -> dict[str, Any]:
    """An HVAC controller's reported state: zones, setpoints, schedule, firmware, sensors."""
    zones = {f"zone{z}": {"setpoint_c": 21.5, "mode": "auto", "fan": "low",
                          "occupied": bool(z % 2), "temp_c": round(20 + rng.random() * 3, 2),
                          "humidity": round(40 + rng.random() * 10, 1), "damper_pct": 35}
             for z in range(6)}
    schedule = {day: {"on": "07:00", "off": "19:00", "eco_setback_c": 3.0}
                for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return {"zones": zones, "schedule": schedule,
            "firmware": {"version": "4.12.7", "channel": "stable", "auto_update": True},
            "network": {"ssid": "bldg-7-iot", "rssi": -61, "ip": "10.20.7.118"},
            "alarms": {"filter_dirty": False, "freeze_protect": True, "high_co2_ppm": 1200},
            "telemetry": {"interval_s": 60, "batch": 10}}


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                  path: str, body: bytes = b"") -> tuple[int, bytes]:
    head = (f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def http_latency(port: int, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for i in range(n):
        body = json.dumps({"state": {"reported": {"zones": {"zone1": {"temp_c": i}}}}}).encode()
        start = time.perf_counter()
        status, _ = await request(reader, writer, "PATCH", "/devices/bench-http/shadow", body)
        out.append(time.perf_counter() - start)
        assert status == 200, status
    writer.close()
    return out


async def mqtt_latency(client: aiomqtt.Client, n: int) -> list[float]:
    base = f"{PREFIX}/bench-mqtt/shadow/update"
    await client.subscribe(base + "/accepted", qos=1)
    out = []
    messages = client.messages.__aiter__()
    for i in range(n):
        body = json.dumps({"state": {"reported": {"zones": {"zone1": {"temp_c": i}}}},
                           "clientToken": str(i)})
        start = time.perf_counter()
        await client.publish(base, body, qos=1)
        while True:
            msg = await asyncio.wait_for(messages.__anext__(), 10)
            payload = msg.payload
            assert isinstance(payload, bytes)
            if json.loads(payload).get("clientToken") == str(i):
                break
        out.append(time.perf_counter() - start)
    return out


async def delta_bytes(port: int, client: aiomqtt.Client, changes: int) -> tuple[float, float]:
    """(mean bytes of a delta message, mean bytes of the full document) per change."""
    rng = random.Random(7)
    device = "bench-hvac"
    doc = device_document(rng)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = f"/devices/{device}/shadow"
    both = json.dumps({"state": {"reported": doc, "desired": doc}}).encode()
    await request(reader, writer, "PATCH", path, both)
    await client.subscribe(f"{PREFIX}/{device}/shadow/update/delta", qos=1)
    messages = client.messages.__aiter__()
    delta_sizes, full_sizes = [], []
    for i in range(changes):
        zone = f"zone{rng.randrange(6)}"
        change: dict[str, Any] = {"zones": {zone: {"setpoint_c": 15 + i / 10}}}
        if i % 3 == 0:
            change["telemetry"] = {"interval_s": 30 + i}
        await request(reader, writer, "PATCH", path,
                      json.dumps({"state": {"desired": change}}).encode())
        msg = await asyncio.wait_for(messages.__anext__(), 10)
        payload = msg.payload
        assert isinstance(payload, bytes)
        delta_sizes.append(len(payload))
        _, full = await request(reader, writer, "GET", path)
        full_sizes.append(len(full))
        # The device applies the change: reported catches up, the delta empties again.
        await request(reader, writer, "PATCH", path,
                      json.dumps({"state": {"reported": change}}).encode())
    writer.close()
    return statistics.mean(delta_sizes), statistics.mean(full_sizes)


async def run(port: int, broker: int, updates: int, changes: int) -> None:
    async with aiomqtt.Client("127.0.0.1", broker, identifier="bench-device",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=NODELAY) as client:
        # The bridge is up once it answers a get.
        await client.subscribe(f"{PREFIX}/bench-probe/shadow/get/rejected", qos=1)
        async with asyncio.timeout(10):
            messages = client.messages.__aiter__()
            while True:
                await client.publish(f"{PREFIX}/bench-probe/shadow/get", "{}", qos=1)
                try:
                    await asyncio.wait_for(messages.__anext__(), 0.5)
                    break
                except TimeoutError:
                    continue
        await client.unsubscribe(f"{PREFIX}/bench-probe/shadow/get/rejected")
        await http_latency(port, 20)  # warm up
        h = await http_latency(port, updates)
        m = await mqtt_latency(client, updates)
        await client.unsubscribe(f"{PREFIX}/bench-mqtt/shadow/update/accepted")
        d, f = await delta_bytes(port, client, changes)
    ms = 1000.0
    print(f"shadow update over HTTP ({updates} sequential, keep-alive): "
          f"p50 {pct(h, 0.5) * ms:.2f} ms  p99 {pct(h, 0.99) * ms:.2f} ms")
    print(f"shadow update over MQTT ({updates} sequential, publish -> accepted): "
          f"p50 {pct(m, 0.5) * ms:.2f} ms  p99 {pct(m, 0.99) * ms:.2f} ms")
    print(f"bytes per change ({changes} changes, HVAC document): delta {d:.0f} B, "
          f"full-state sync {f:.0f} B, ratio {f / d:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    broker = Mosquitto().start()
    try:
        with redis_server() as redis:
            text = ("listen: {listen}\n"
                    f"redis: {{url: '{redis.url}'}}\n"
                    f"devices: {{shards: 4, mqtt: {{port: {broker.port}}}}}\n"
                    "routes:\n  - {match: {path_prefix: /}, devices: true}\n")
            with gateways([text]) as (gw,):
                asyncio.run(run(gw.port, broker.port, args.updates, args.changes))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
