"""Devices connected to one gateway worker over WebSocket sessions, beside mosquitto holding
the same number of MQTT connections, in one run: memory per connected device, and the time
from a shadow update to the delta arriving at the device.

1. Memory: opens N device sessions (default 10,000; `GET /devices/dev-I/connect`, raw
   handshakes, then silent but reading) to one gateway worker with a real redis-server,
   checks `edgeward_device_sessions` says N, and prints the worker's RSS growth per device.
   The same N idle MQTT 3.1.1 clients (a CONNECT each, keep-alive off) against one mosquitto
   give its RSS per connection: what a broker-based fleet pays per device for the same
   "connected, waiting for a delta" state (mosquitto keeps no shadow either).
2. Latency: with all N connected, S times in turn (default 500): a desired change of a random
   device through the HTTP API (keep-alive PATCH on the same worker), until its delta frame
   arrives at that device's socket (it then acknowledges, so the next delta may go); then the
   same for commands (POST .../commands until the command frame; the device acknowledges).
3. Telemetry: every device sends one reading over its session, one in ten twice with the
   same id; msg/s until every acknowledgement is back, then the telemetry streams are read
   whole (XRANGE): lost and duplicated ids.

127.0.0.1 only, bounded (about a minute at 10,000); everything started is stopped by PID.

    .venv/bin/python benchmarks/device_connections.py [--devices 10000] [--samples 500]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import statistics
import struct
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from benchkit import rss_kib  # noqa: E402
from tests.cluster._cluster import admin_port, gateways, redis_server  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

OPEN_AT_ONCE = 200


def metric(admin: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def masked_text(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


class Tally:
    """Telemetry acknowledgements counted across every device."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.resent = 0
        self.done: asyncio.Future[None] | None = None

    def add(self) -> None:
        self.count += 1
        if self.done is not None and self.count >= self.target and not self.done.done():
            self.done.set_result(None)


class Device(asyncio.Protocol):
    """One device: a handshake, then it reads server frames (text, unmasked), acknowledges
    each delta and command, and counts its telemetry acknowledgements."""

    def __init__(self, name: str, opened: asyncio.Future[bool], tally: Tally) -> None:
        self.name = name
        self.opened = opened
        self.tally = tally
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[dict[str, object]] | None = None
        self.reading: dict[str, object] = {}

    def send(self, doc: dict[str, object]) -> None:
        if self.transport is not None:
            self.transport.write(masked_text(json.dumps(doc, separators=(",", ":"))))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET /devices/{self.name}/connect HTTP/1.1\r\nHost: bench\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
                        .encode())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.opened.done():
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.opened.set_result(head.startswith(b"HTTP/1.1 101"))
            self.buf = rest
        while len(self.buf) >= 2:
            size, at = self.buf[1] & 0x7F, 2
            if size == 126:
                if len(self.buf) < 4:
                    return
                size, at = struct.unpack("!H", self.buf[2:4])[0], 4
            if len(self.buf) < at + size:
                return
            frame, self.buf = self.buf[at:at + size], self.buf[at + size:]
            self.on_message(json.loads(frame))

    def on_message(self, doc: dict[str, object]) -> None:
        kind = doc.get("type")
        if kind == "telemetry_accepted":
            self.tally.add()
            return
        if kind == "rejected" and doc.get("op") == "telemetry":
            # At least once: a reading the store could not take (503 under the burst) is
            # sent again with the same id.
            self.tally.resent += 1
            self.send(self.reading)
            return
        if kind == "delta":
            self.send({"type": "ack", "shadow": doc["shadow"], "version": doc["version"]})
        elif kind == "command":
            self.send({"type": "command_ack", "id": doc["id"]})
        else:
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(doc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)


class MqttIdle(asyncio.Protocol):
    def __init__(self, client_id: str, done: asyncio.Future[bool]) -> None:
        self.client_id = client_id.encode()
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CONNECT, MQTT 3.1.1: protocol name, level 4, clean session, keep-alive 0.
        var = b"\x00\x04MQTT\x04\x02\x00\x00"
        payload = struct.pack("!H", len(self.client_id)) + self.client_id
        body = var + payload
        transport.write(bytes([0x10, len(body)]) + body)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_result(data[:1] == b"\x20" and data[3:4] == b"\x00")  # CONNACK ok

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)


async def open_devices(port: int, names: list[str], tally: Tally) -> dict[str, Device]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(OPEN_AT_ONCE)
    devices: dict[str, Device] = {}

    async def one(name: str) -> None:
        async with sem:
            opened: asyncio.Future[bool] = loop.create_future()
            _, proto = await loop.create_connection(lambda: Device(name, opened, tally),
                                                    "127.0.0.1", port)
            if not await opened:
                raise SystemExit(f"{name}: the handshake did not get its 101")
            devices[name] = proto

    await asyncio.gather(*(one(n) for n in names))
    return devices


async def open_mqtt(port: int, n: int) -> list[asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(OPEN_AT_ONCE)
    out: list[asyncio.BaseTransport] = []

    async def one(i: int) -> None:
        async with sem:
            done: asyncio.Future[bool] = loop.create_future()
            transport, _ = await loop.create_connection(lambda: MqttIdle(f"dev-{i}", done),
                                                        "127.0.0.1", port)
            if not await done:
                raise SystemExit("mosquitto refused a CONNECT")
            out.append(transport)

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                  path: str, doc: object) -> None:
    body = json.dumps(doc).encode()
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: bench\r\n"
                 f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                 .encode() + body)
    length = 0
    status = await reader.readline()
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value_ = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value_)
    await reader.readexactly(length)
    if b" 200 " not in status and b" 202 " not in status:
        raise SystemExit(f"{method} {path} answered {status!r}")


async def latency(port: int, devices: dict[str, Device], samples: int,
                  commands: bool = False) -> list[float]:
    """Update (or command) -> the device has it, ms, one at a time, random devices."""
    rng = random.Random(7 + commands)
    names = list(devices)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for i in range(samples):
        dev = devices[rng.choice(names)]
        dev.waiter = loop.create_future()
        started = time.perf_counter()
        if commands:
            await request(reader, writer, "POST", f"/devices/{dev.name}/commands",
                          {"op": "set", "n": i})
        else:
            await request(reader, writer, "PATCH", f"/devices/{dev.name}/shadow",
                          {"state": {"desired": {"setpoint": i}}})
        try:
            await asyncio.wait_for(dev.waiter, 10)
        except TimeoutError:
            raise SystemExit(f"sample {i}: nothing reached {dev.name} within 10 s "
                             f"(closed: {dev.transport is None or dev.transport.is_closing()})"
                             ) from None
        out.append((time.perf_counter() - started) * 1000)
    writer.close()
    return out


def config(redis_url: str) -> str:
    return ("listen: {listen}\nadmin: {admin}\n"
            f"redis: {{url: '{redis_url}'}}\n"
            "routes:\n  - match: {path_prefix: /devices/}\n"
            "    devices: true\n    websocket: {idle_timeout: null}\n")


async def gateway_run(port: int, admin: int, pid: int, n: int, samples: int,
                      redis_url: str) -> dict[str, float]:
    tally = Tally()
    warm = await open_devices(port, [f"warm-{i}" for i in range(100)], tally)
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    started = time.monotonic()
    devices = await open_devices(port, [f"dev-{i}" for i in range(n)], tally)
    opened = time.monotonic() - started
    deadline = time.monotonic() + 30
    while metric(admin, "edgeward_device_sessions") < n + len(warm) and (
            time.monotonic() < deadline):
        await asyncio.sleep(0.2)
    sessions = metric(admin, "edgeward_device_sessions")
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    times = sorted(await latency(port, devices, samples))
    commands = sorted(await latency(port, devices, samples, commands=True))
    got = {"sessions": sessions, "rss_before_kib": before, "rss_after_kib": after,
           "per_device": (after - before) * 1024 / n, "open_s": opened,
           "p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1],
           "cmd_p50": statistics.median(commands),
           "cmd_p99": commands[int(len(commands) * 0.99) - 1]}
    got.update(await telemetry(devices, tally, redis_url))
    for d in [*devices.values(), *warm.values()]:
        if d.transport is not None:
            d.transport.close()
    return got


async def telemetry(devices: dict[str, Device], tally: Tally,
                    redis_url: str) -> dict[str, float]:
    """Every device sends one reading over its session, one in ten sends it twice (the
    same id: a resend); once every acknowledgement is back, the telemetry streams are read
    whole (XRANGE) and every id counted."""
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    tally.count, tally.done = 0, loop.create_future()
    started = time.monotonic()
    for i, dev in enumerate(devices.values()):
        reading: dict[str, object] = {"type": "telemetry", "id": f"r-{dev.name}",
                                      "temp_c": 20 + i % 7}
        dev.reading = reading
        dev.send(reading)
        sent.append(str(reading["id"]))
        if i % 10 == 0:
            dev.send(reading)
            sent.append(str(reading["id"]))
    tally.target = len(sent)
    if tally.count >= tally.target:
        tally.done.set_result(None)
    await asyncio.wait_for(tally.done, 120)
    seconds = time.monotonic() - started
    client = redis.Redis.from_url(redis_url)
    stored: list[str] = []
    for key in client.scan_iter("edgeward:dev:*:telemetry"):
        stored += [fields[b"id"].decode() for _, fields in client.xrange(key)]
    unique = set(sent)
    return {"telemetry_sent": len(sent), "telemetry_unique": len(unique),
            "telemetry_resent": tally.resent,
            "telemetry_rate": len(sent) / seconds,
            "lost": len(unique - set(stored)), "duplicated": len(stored) - len(set(stored))}


async def mosquitto_run(n: int) -> dict[str, float]:
    broker = Mosquitto().start()
    try:
        assert broker.proc is not None
        warm = await open_mqtt(broker.port, 100)
        await asyncio.sleep(0.5)
        before = rss_kib(broker.proc.pid)
        conns = await open_mqtt(broker.port, n)
        await asyncio.sleep(0.5)
        after = rss_kib(broker.proc.pid)
        for t in conns + warm:
            t.close()
        return {"per_device": (after - before) * 1024 / n}
    finally:
        broker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # inherited by what starts
    if args.devices + 500 > hard:
        raise SystemExit(f"{args.devices} devices need more descriptors than {hard}")
    with redis_server() as server, gateways([config(server.url)]) as (gw,):
        assert gw.proc is not None
        got = asyncio.run(gateway_run(gw.port, admin_port(gw), gw.proc.pid, args.devices,
                                      args.samples, server.url))
    mq = asyncio.run(mosquitto_run(args.devices))
    n = args.devices
    print(f"devices={n} sessions_metric={got['sessions']:.0f} opened in {got['open_s']:.1f} s")
    print(f"gateway worker RSS {got['rss_before_kib'] / 1024:.1f} -> "
          f"{got['rss_after_kib'] / 1024:.1f} MiB")
    print(f"update -> delta at the device, {args.samples} samples with {n} connected: "
          f"p50={got['p50']:.2f} ms p99={got['p99']:.2f} ms")
    print(f"command -> the device has it, {args.samples} samples: p50={got['cmd_p50']:.2f} ms "
          f"p99={got['cmd_p99']:.2f} ms")
    print(f"telemetry over the sessions: {got['telemetry_sent']:.0f} messages "
          f"({got['telemetry_unique']:.0f} unique ids, one in ten sent twice; "
          f"{got['telemetry_resent']:.0f} sent again after a 503) acknowledged at "
          f"{got['telemetry_rate']:.0f} msg/s; read back from the streams: "
          f"lost={got['lost']:.0f} duplicated={got['duplicated']:.0f}")
    print(f"RSS per connected device: edgeward session {got['per_device']:.0f} B, "
          f"mosquitto MQTT connection {mq['per_device']:.0f} B "
          f"(ratio {got['per_device'] / max(1.0, mq['per_device']):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
