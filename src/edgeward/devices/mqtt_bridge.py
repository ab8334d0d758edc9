"""The MQTT bridge: shadow topics on a broker, answered from the shadow store, as AWS IoT does.

Devices publish to `PREFIX/{id}/shadow[/name/{name}]/update` and `.../get`, and telemetry to
`PREFIX/{id}/telemetry`; the bridge answers on `.../update/accepted|rejected` and
`.../get/accepted|rejected`. Deltas go out on `.../update/delta` from the change streams,
whichever way the change came (MQTT or HTTP, this gateway or another).

Several gateways share the work without coordinating among themselves:
- requests: a shared subscription (`$share/GROUP/...`, MQTT 5; mosquitto >= 1.6, EMQX,
  HiveMQ) hands each message to one gateway;
- deltas: one Redis consumer group (`PREFIX:mqtt`) over the shards' change streams hands
  each change to one gateway, which publishes its delta and acknowledges it (XACK) after the
  broker took it; an entry a gateway left unacknowledged for `claim_idle` (it died, or lost
  its broker) is claimed by another with XAUTOCLAIM and its delta published there.
Messages of one device are handled in order (a device hashes to one of LANES queues); devices
are handled concurrently.

Client library: aiomqtt (asyncio-native, typed; on paho-mqtt, the Eclipse reference client),
so the bridge runs on the worker's event loop beside the data plane with no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt
from redis.exceptions import ResponseError

from edgeward.devices import commands, requests
from edgeward.devices.config import DevicesConfig, MqttConfig
from edgeward.devices.outbox import ACK, COMMAND, DELTA, Outbox
from edgeward.devices.requests import Answer, rejection
from edgeward.devices.store import ShadowStore, as_text
from edgeward.ratelimit.limiter import Limiter

log = logging.getLogger("edgeward.devices")

# Per-device order, cross-device concurrency: this many sequential queues.
LANES: Final = 16
# Reconnect to the broker after a failure (paho's reconnect_delay starts at 1 s).
RECONNECT_DELAY: Final = 1.0
DELTA_BLOCK_MS: Final = 1000
# Nagle off, as on the gateway's HTTP sockets: paho leaves it on, and a QoS 1 publish then
# waits ~40 ms for the broker's delayed ACK before its PUBACK (measured: 48 ms -> 0.5 ms).
NODELAY: Final = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
DELTA_BATCH: Final = 100


@dataclass(frozen=True, slots=True)
class Topic:
    device: str
    name: str      # "" = the classic shadow
    op: str        # update | get | telemetry

    def base(self, prefix: str) -> str:
        named = f"/name/{self.name}" if self.name else ""
        return f"{prefix}/{self.device}/shadow{named}"


def parse_topic(topic: str, prefix: str) -> Topic | None:
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) == 2 and parts[1] == "telemetry":
        return Topic(parts[0], "", "telemetry")
    if len(parts) == 3 and parts[1:] == ["commands", "ack"]:
        return Topic(parts[0], "", "command_ack")
    if len(parts) == 3 and parts[1] == "shadow" and parts[2] in ("update", "get"):
        return Topic(parts[0], "", parts[2])
    if (len(parts) == 5 and parts[1] == "shadow" and parts[2] == "name"
            and parts[4] in ("update", "get")):
        return Topic(parts[0], parts[3], parts[4])
    return None


def subscriptions(config: MqttConfig) -> list[str]:
    share = f"$share/{config.share_group}/" if config.share_group else ""
    p = config.topic_prefix
    return [share + t for t in (f"{p}/+/shadow/update", f"{p}/+/shadow/get",
                                f"{p}/+/shadow/name/+/update", f"{p}/+/shadow/name/+/get",
                                f"{p}/+/telemetry", f"{p}/+/commands/ack")]


class MqttBridge:
    """One per worker (kept by the registry while `devices` is unchanged)."""

    def __init__(self, store: ShadowStore, config: DevicesConfig,
                 limiter: Limiter | None = None) -> None:
        assert config.mqtt is not None
        self.store = store
        self.config = config
        self.limiter = limiter    # devices.mqtt.rate_limit, keyed by device id
        self.mqtt = config.mqtt
        self.prefix = config.mqtt.topic_prefix
        self.client_id = (f"{config.mqtt.client_id or 'edgeward-' + socket.gethostname()}"
                          f"-{os.getpid()}")
        self.outbox = Outbox()
        # edgeward_device_mqtt_messages_total{kind} (docs/devices.md).
        self.stats = {"received": 0, "accepted": 0, "rejected": 0, "delta": 0, "command": 0,
                      "claimed": 0}
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop_bridge(self) -> None:
        """Stop (the registry no longer keeps this bridge: `devices` or `redis` changed)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker, Redis or a bug: reconnect
                # A lost broker surfaces from the session's task group as an ExceptionGroup.
                log.warning("mqtt bridge: %r; reconnecting in %.0fs", exc, RECONNECT_DELAY)
                self.reconnects += 1
            self._client = None
            await asyncio.sleep(RECONNECT_DELAY)

    async def _session(self) -> None:
        async with aiomqtt.Client(self.mqtt.host, self.mqtt.port, identifier=self.client_id,
                                  protocol=aiomqtt.ProtocolVersion.V5,
                                  keepalive=int(self.mqtt.keepalive),
                                  socket_options=NODELAY) as client:
            self._client = client
            for pattern in subscriptions(self.mqtt):
                await client.subscribe(pattern, qos=1)
            lanes = [asyncio.Queue[aiomqtt.Message]() for _ in range(LANES)]
            async with asyncio.TaskGroup() as tasks:
                for lane in lanes:
                    tasks.create_task(self._lane(lane))
                tasks.create_task(self._deltas())
                tasks.create_task(self._claims())
                tasks.create_task(self._sender(client))
                async for message in client.messages:
                    topic = parse_topic(message.topic.value, self.prefix)
                    if topic is None:
                        continue
                    self.stats["received"] += 1
                    lanes[zlib.crc32(topic.device.encode()) % LANES].put_nowait(message)

    # -- requests --------------------------------------------------------------------------

    async def _lane(self, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            message = await queue.get()
            topic = parse_topic(message.topic.value, self.prefix)
            if topic is not None:
                payload = message.payload
                await self._handle(topic, payload if isinstance(payload, bytes) else b"")

    async def _handle(self, topic: Topic, payload: bytes) -> None:
        base = topic.base(self.prefix)
        where = (f"{self.prefix}/{topic.device}/telemetry" if topic.op == "telemetry"
                 else f"{base}/{topic.op}")
        if self.limiter is not None and not await requests.admitted(self.limiter, topic.device):
            self._send(topic.device, where, DELTA, rejection(
                429, "rate_limited", _token(payload),
                "the device's devices.mqtt.rate_limit refused the message"))
            return
        if topic.op == "command_ack":
            await self._command_done(topic.device, payload)
            return
        if topic.op == "telemetry":
            answer = await requests.telemetry(self.store, topic.device, payload)
            self._send(topic.device, where, ACK if answer.accepted else DELTA, answer)
            return
        try:
            body = json.loads(payload) if payload else {}
        except ValueError as exc:
            answer = rejection(400, "invalid_shadow_update", None, str(exc))
        else:
            answer = await requests.shadow_request(self.store, topic.device, topic.name,
                                                   topic.op, body, topic.device)
        self._send(topic.device, where, DELTA, answer)

    async def _command_done(self, device: str, payload: bytes) -> None:
        """`PREFIX/{id}/commands/ack` with `{"id": ...}`: the device did the command."""
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        refused = await requests.command_done(self.store, device, body)
        if refused is not None:
            self._send(device, f"{self.prefix}/{device}/commands/ack", DELTA, refused)

    def _send(self, device: str, where: str, klass: int, answer: Answer) -> None:
        """An answer on `where`/accepted or `where`/rejected."""
        self.stats["accepted" if answer.accepted else "rejected"] += 1
        suffix = "/accepted" if answer.accepted else "/rejected"
        self.outbox.put(device, klass, where + suffix, json.dumps(answer.doc).encode())

    # -- deltas from the change streams ----------------------------------------------------

    async def _deltas(self) -> None:
        group = f"{self.config.key_prefix}:mqtt"
        client = self.store.client
        for stream in self.store.change_streams():
            with contextlib.suppress(ResponseError):  # BUSYGROUP: another gateway made it
                await client.xgroup_create(stream, group, id="$", mkstream=True)
        self._ready.set()
        async with asyncio.TaskGroup() as readers:
            for streams in self.store.read_groups():
                readers.create_task(self._read_deltas(group, streams))

    async def _read_deltas(self, group: str, streams: list[str]) -> None:
        # First the entries this consumer took before and never acknowledged (the broker went
        # away before they were sent), once; then new ones.
        client = self.store.client
        cursor = "0"
        while True:
            got = await client.xreadgroup(group, self.client_id, dict.fromkeys(streams, cursor),
                                          count=DELTA_BATCH, block=DELTA_BLOCK_MS)
            for stream, entries in got or []:
                for entry_id, fields in entries:
                    ack = functools.partial(client.xack, stream, group, entry_id)
                    if not self._publish_delta(fields, ack):
                        await ack()
            if cursor == "0" and all(len(entries) < DELTA_BATCH for _, entries in got or []):
                cursor = ">"

    async def _claims(self) -> None:
        """Every claim_idle/2: take over the entries other consumers of the group have left
        unacknowledged for claim_idle (XAUTOCLAIM, Redis 6.2+) and publish their deltas."""
        await self._ready.wait()
        group = f"{self.config.key_prefix}:mqtt"
        streams = self.store.change_streams()
        client = self.store.client
        idle_ms = int(self.mqtt.claim_idle * 1000)
        while True:
            await asyncio.sleep(self.mqtt.claim_idle / 2)
            for stream in streams:
                start = "0-0"
                while True:
                    got = await client.xautoclaim(stream, group, self.client_id, idle_ms,
                                                  start_id=start, count=DELTA_BATCH)
                    start, entries = as_text(got[0]), got[1]
                    for entry_id, fields in entries:
                        if fields is None:  # trimmed from the stream meanwhile
                            continue
                        self.stats["claimed"] += 1
                        ack = functools.partial(client.xack, stream, group, entry_id)
                        if not self._publish_delta(fields, ack):
                            await ack()
                    if start == "0-0":
                        break

    def _publish_delta(self, fields: dict[bytes, bytes],
                       ack: Callable[[], Awaitable[object]]) -> bool:
        """Queue the change's delta (acknowledged once the broker took it); False when the
        change has none (the caller acknowledges it now)."""
        event = json.loads(fields[b"event"])
        device, name = fields[b"device"].decode(), fields[b"shadow"].decode()
        if event.get("kind") == "command":
            doc = commands.message(event["id"], event["command"], event["timestamp"])
            self.stats["command"] += 1
            # A refused command stays unacknowledged in the stream: pending, so it is
            # delivered again (claimed, or after a reconnect) rather than lost.
            self.outbox.put(device, COMMAND, f"{self.prefix}/{device}/commands",
                            json.dumps(doc).encode(), after=[ack])
            return True
        if event.get("delta") is None:
            return False
        base = Topic(device, name, "update").base(self.prefix)
        doc = {"state": event["delta"], "version": event["version"],
               "timestamp": event["timestamp"]}
        self.stats["delta"] += 1
        self.outbox.put(device, DELTA, f"{base}/update/delta", json.dumps(doc).encode(),
                        coalesce=f"{base}/update/delta", after=[ack])
        return True

    # -- sending ---------------------------------------------------------------------------

    async def _sender(self, client: aiomqtt.Client) -> None:
        while True:
            item = await self.outbox.next()
            await client.publish(item.topic, item.payload, qos=1)
            for call in item.after:
                await call()




def _token(payload: bytes) -> Any:
    """The clientToken of a payload, if it is a JSON object with one."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body.get("clientToken") if isinstance(body, dict) else None
