"""Helpers of benchmarks/devices.py: the HVAC controller document, a keep-alive HTTP/1.1
client that counts the bytes each way (heads included), MQTT packet sizes, percentiles, the
gateways' metrics and RFC 7386 merge patch.

Bytes are application-layer bytes (HTTP request and response, MQTT packets); TCP/IP headers
and TLS are not counted (they add about the same per message either way).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

from tests.cluster._cluster import admin_port, http_get
from tests.support.gateway import GatewayProcess

TIMEOUT = 15.0
PREFIX = "edgeward/things"
# MQTT 5 PUBACK with reason Success and no properties: fixed header (2) + packet id (2).
PUBACK_BYTES = 4


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int        # request bytes written (head + body)
    received: int    # response bytes read (head + body)

    def json(self) -> Any:
        return json.loads(self.body)


class Conn:
    """One HTTP/1.1 keep-alive connection to a gateway (Content-Length answers only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, method: str, path: str, body: object | bytes | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        async with asyncio.timeout(TIMEOUT):
            return await self._call(method, path, body, headers or {})

    async def _call(self, method: str, path: str, body: object | bytes | None,
                    headers: dict[str, str]) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        raw = body if isinstance(body, bytes) else (
            b"" if body is None else json.dumps(body, separators=(",", ":")).encode())
        head = f"{method} {path} HTTP/1.1\r\nhost: devices.example\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        request = head.encode() + raw
        self.writer.write(request)
        top = await self.reader.readuntil(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip()
                  for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
        payload = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return Answer(int(lines[0].split()[1]), fields, payload, len(request),
                      len(top) + len(payload))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


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


def telemetry_reading(rng: random.Random, key: str) -> dict[str, Any]:
    """One telemetry message of the HVAC controller: its idempotency key and six zones'
    temperature and humidity (about 300 bytes of JSON)."""
    return {"id": key, "zones": {f"zone{z}": {"temp_c": round(20 + rng.random() * 3, 2),
                                              "humidity": round(40 + rng.random() * 10, 1)}
                                 for z in range(6)}}


def publish_bytes(topic: str, payload: int | bytes | str) -> int:
    """Size of an MQTT 5 QoS 1 PUBLISH packet without properties."""
    size = payload if isinstance(payload, int) else len(
        payload.encode() if isinstance(payload, str) else payload)
    rest = 2 + len(topic.encode()) + 2 + 1 + size   # topic, packet id, properties length
    length_bytes = 1 if rest < 128 else 2 if rest < 16384 else 3
    return 1 + length_bytes + rest


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(samples: list[float]) -> str:
    return f"p50 {pct(samples, 0.5) * 1000:.1f} ms p99 {pct(samples, 0.99) * 1000:.1f} ms"


def metric_sum(gws: list[GatewayProcess], name: str, labels: str = "") -> float:
    """The sum of one sample of the admin /metrics page over the gateways."""
    wanted = f"{name}{{{labels}}}" if labels else name
    total = 0.0
    for gw in gws:
        _, body = http_get(admin_port(gw), "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(wanted + " "):
                total += float(line.split()[-1])
    return total
