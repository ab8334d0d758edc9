"""Device gateway figures on loopback, bounded (about 60 s on 2 shared cores): three gateway
processes (with their MQTT bridges), one real redis-server, one real mosquitto, all on
127.0.0.1 free ports and stopped by PID.

0. Shadow update latency, p50/p99: HTTP PATCH on a keep-alive connection until the 200, and
   MQTT publish to .../shadow/update until .../update/accepted arrives; sequential, one device,
   one gateway. Bytes per change: an HVAC controller document (~60 fields), one or two desired
   fields changed per step; the MQTT delta against the full document (GET).
1. Bytes per device per second and update -> device time, delta sync (MQTT delta, HTTP long
   poll) against full-state sync (a GET per change), on a stated fleet shape
   (devices_sync.py).
2. Conflict rate with concurrent writers (the device and two applications on each shadow,
   through the three gateways): If-Match with rebase on 409 against per-writer seq; the final
   documents checked on every gateway against the convergence rule (devices_conflicts.py).
3. Telemetry into Redis Streams over HTTP and MQTT with idempotency keys and deliberate
   resends: messages/s, then XRANGE proves none lost and none stored twice
   (devices_telemetry.py).

Each figure prints its lines as it ends; a summary block repeats them all at the end.

    .venv/bin/python benchmarks/devices.py [--updates 300] [--changes 100]
        [--fleet-changes 10] [--fleet-pace 0.6] [--change-every 1] [--telemetry-every 1]
        [--telemetry 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt  # noqa: E402
import devices_conflicts  # noqa: E402
import devices_sync  # noqa: E402
import devices_telemetry  # noqa: E402
from devices_kit import PREFIX, device_document, metric_sum, ms  # noqa: E402
from tests.cluster._cluster import admin_port, gateways, redis_server, wait_admin  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

from edgeward.devices.mqtt_bridge import NODELAY  # noqa: E402

SHARDS = 4
GATEWAYS = 3


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


async def bridges_up(client: aiomqtt.Client, gws: list[GatewayProcess]) -> None:
    """Every gateway's MQTT bridge is up once it has received a request (the broker's shared
    subscription spreads the probes round-robin over the subscribed bridges)."""
    async with asyncio.timeout(15):
        while True:
            await client.publish(f"{PREFIX}/bench-probe/shadow/get", "{}", qos=1)
            received = await asyncio.to_thread(
                lambda: [metric_sum([gw], "edgeward_device_mqtt_messages_total",
                                    'kind="received"') for gw in gws])
            if all(received):
                return
            await asyncio.sleep(0.2)


async def run(gws: list[GatewayProcess], broker: int, args: argparse.Namespace,
              redis_url: str) -> list[str]:
    port = gws[0].port
    async with aiomqtt.Client("127.0.0.1", broker, identifier="bench-device",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              socket_options=NODELAY) as client:
        await bridges_up(client, gws)
        await http_latency(port, 20)  # warm up
        h = await http_latency(port, args.updates)
        m = await mqtt_latency(client, args.updates)
        await client.unsubscribe(f"{PREFIX}/bench-mqtt/shadow/update/accepted")
        d, f = await delta_bytes(port, client, args.changes)
    summary = [
        f"shadow update over HTTP ({args.updates} sequential, keep-alive): {ms(h)}",
        f"shadow update over MQTT ({args.updates} sequential, publish -> accepted): {ms(m)}",
        f"bytes per change ({args.changes} changes, HVAC document): delta {d:.0f} B, "
        f"full-state sync {f:.0f} B, ratio {f / d:.1f}x",
    ]
    figures = (
        ("1. bytes and time to the device, delta against full state",
         lambda: devices_sync.figure([gw.port for gw in gws], broker, args.fleet_changes,
                                     args.fleet_pace, args.change_every,
                                     args.telemetry_every)),
        ("2. conflicts with concurrent writers", lambda: devices_conflicts.figure(gws)),
        ("3. telemetry into Redis Streams",
         lambda: devices_telemetry.figure(gws, broker, redis_url, SHARDS, args.telemetry)),
    )
    for title, figure in figures:
        start = time.perf_counter()
        lines = await figure()
        print(f"-- {title} ({time.perf_counter() - start:.1f} s, load average "
              f"{os.getloadavg()[0]:.2f})", *lines, sep="\n", flush=True)
        summary += lines
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--fleet-changes", type=int, default=10,
                        help="desired changes per device per transport (figure 1)")
    parser.add_argument("--fleet-pace", type=float, default=0.6,
                        help="mean seconds between a device's changes while measuring "
                             "(figure 1)")
    parser.add_argument("--change-every", type=float, default=1.0,
                        help="seconds between desired changes of one device (figure 1)")
    parser.add_argument("--telemetry-every", type=float, default=1.0,
                        help="seconds between telemetry readings of one device (figure 1)")
    parser.add_argument("--telemetry", type=int, default=4000,
                        help="telemetry messages per transport (figure 3)")
    args = parser.parse_args()
    started = time.perf_counter()
    broker = Mosquitto().start()
    try:
        with redis_server() as redis:
            text = ("listen: {listen}\nadmin: {admin}\n"
                    f"redis: {{url: '{redis.url}'}}\n"
                    f"devices: {{shards: {SHARDS}, mqtt: {{port: {broker.port}}}}}\n"
                    "routes:\n  - {match: {path_prefix: /}, devices: true}\n")
            with gateways([text] * GATEWAYS) as gws:
                for gw in gws:
                    wait_admin(admin_port(gw))
                summary = asyncio.run(run(gws, broker.port, args, redis.url))
    finally:
        broker.close()
    load = os.getloadavg()
    print(f"== devices summary ({GATEWAYS} gateways, one redis-server, one mosquitto; "
          f"{time.perf_counter() - started:.0f} s; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores)", *summary, sep="\n")


if __name__ == "__main__":
    main()
