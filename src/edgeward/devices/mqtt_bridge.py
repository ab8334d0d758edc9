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
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt
from redis.exceptions import ResponseError

from edgeward.devices.config import DevicesConfig, MqttConfig
from edgeward.devices.outbox import ACK, COMMAND, DELTA, Outbox
from edgeward.devices.shadow import Result, UpdateError, metadata_of, parse_update
from edgeward.devices.store import ShadowStore, StoreError, TooLarge
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
                                f"{p}/+/telemetry")]


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
        self.stats = {"received": 0, "accepted": 0, "rejected": 0, "delta": 0, "claimed": 0}
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
        if self.limiter is not None and not await self._admit(topic):
            where = (f"{self.prefix}/{topic.device}/telemetry" if topic.op == "telemetry"
                     else f"{base}/{topic.op}")
            self._reject(where, 429, "rate_limited", _token(payload),
                         "the device's devices.mqtt.rate_limit refused the message")
            return
        if topic.op == "telemetry":
            await self._telemetry(topic, payload)
            return
        token: Any = None
        try:
            body = json.loads(payload) if payload else {}
            if not isinstance(body, dict):
                raise UpdateError("the payload must be a JSON object")
            token = body.get("clientToken")
            if topic.op == "get":
                shadow, _ = await self.store.read(topic.device, topic.name)
                if shadow is None:
                    self._reject(f"{base}/get", 404, "shadow_not_found", token)
                    return
                doc = shadow.document()
                doc["clientToken"] = token
                self._accept(f"{base}/get", doc)
                return
            update = parse_update(body, writer=str(body.get("writer") or topic.device),
                                  version=None)
            result = await self.store.update(topic.device, topic.name, update,
                                             time.time())
        except (UpdateError, ValueError) as exc:
            self._reject(f"{base}/{topic.op}", 400, "invalid_shadow_update", token, str(exc))
            return
        except TooLarge as exc:
            self._reject(f"{base}/{topic.op}", 413, "shadow_too_large", token, str(exc))
            return
        except StoreError as exc:
            self._reject(f"{base}/{topic.op}", 503, "device_store_unavailable", token, str(exc))
            return
        self._answer_update(base, body, result, token)

    async def _admit(self, topic: Topic) -> bool:
        assert self.limiter is not None
        now = asyncio.get_running_loop().time()
        decision = self.limiter.decide_sync(topic.device, now)
        if decision is None:
            decision = await self.limiter.decide(topic.device, now)
        return bool(decision.allowed)

    def _answer_update(self, base: str, body: dict[str, Any], result: Result,
                       token: Any) -> None:
        shadow = result.shadow
        if result.outcome == "conflict":
            self._reject(f"{base}/update", 409, "version_conflict", token,
                         f"the shadow is at version {shadow.version}",
                         current=shadow.document())
            return
        self._accept(f"{base}/update", {
            "state": body.get("state"),
            "metadata": metadata_of(shadow.metadata(), body.get("state") or {}),
            "version": shadow.version, "clock": shadow.clock, "timestamp": shadow.timestamp,
            "outcome": result.outcome, "suppressed": list(result.suppressed),
            "clientToken": token})

    async def _telemetry(self, topic: Topic, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            key = str(body["id"]) if isinstance(body, dict) and "id" in body else None
        except ValueError:
            key = None
        base = f"{self.prefix}/{topic.device}/telemetry"
        if key is None:
            self._reject(base, 400, "invalid_shadow_update", None,
                         "telemetry needs a JSON object with an `id` (its idempotency key)")
            return
        try:
            stored, entry = await self.store.ingest(topic.device, key, payload)
        except StoreError as exc:
            self._reject(base, 503, "device_store_unavailable", None, str(exc))
            return
        self.outbox.put(topic.device, ACK, f"{base}/accepted",
                        json.dumps({"id": key, "stored": stored, "entry": entry}).encode())

    def _accept(self, topic: str, doc: dict[str, Any]) -> None:
        self.stats["accepted"] += 1
        device = topic[len(self.prefix) + 1:].split("/", 1)[0]
        self.outbox.put(device, DELTA, topic + "/accepted", json.dumps(doc).encode())

    def _reject(self, topic: str, status: int, code: str, token: Any,
                message: str | None = None, **extra: Any) -> None:
        self.stats["rejected"] += 1
        device = topic[len(self.prefix) + 1:].split("/", 1)[0]
        doc = {"code": status, "error": code, "message": message or code,
               "clientToken": token, **extra}
        self.outbox.put(device, DELTA, topic + "/rejected", json.dumps(doc).encode())

    # -- deltas from the change streams ----------------------------------------------------

    async def _deltas(self) -> None:
        group = f"{self.config.key_prefix}:mqtt"
        streams = [f"{self.config.key_prefix}:{{{s}}}:changes" for s in range(self.config.shards)]
        client = self.store.client
        for stream in streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: another gateway made it
                await client.xgroup_create(stream, group, id="$", mkstream=True)
        self._ready.set()
        # First the entries this consumer took before and never acknowledged (the broker went
        # away before they were sent), once; then new ones.
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
        streams = [f"{self.config.key_prefix}:{{{s}}}:changes" for s in range(self.config.shards)]
        client = self.store.client
        idle_ms = int(self.mqtt.claim_idle * 1000)
        while True:
            await asyncio.sleep(self.mqtt.claim_idle / 2)
            for stream in streams:
                start = "0-0"
                while True:
                    got = await client.xautoclaim(stream, group, self.client_id, idle_ms,
                                                  start_id=start, count=DELTA_BATCH)
                    start, entries = _text(got[0]), got[1]
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
        if event.get("delta") is None:
            return False
        device, name = fields[b"device"].decode(), fields[b"shadow"].decode()
        base = Topic(device, name, "update").base(self.prefix)
        doc = {"state": event["delta"], "version": event["version"],
               "timestamp": event["timestamp"]}
        kind = COMMAND if event.get("kind") == "command" else DELTA
        self.stats["delta"] += 1
        # A refused command stays unacknowledged in the stream: pending, so it is delivered
        # again after a reconnect rather than lost.
        self.outbox.put(device, kind, f"{base}/update/delta", json.dumps(doc).encode(),
                        coalesce=f"{base}/update/delta", after=[ack])
        return True

    # -- sending ---------------------------------------------------------------------------

    async def _sender(self, client: aiomqtt.Client) -> None:
        while True:
            item = await self.outbox.next()
            await client.publish(item.topic, item.payload, qos=1)
            for call in item.after:
                await call()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _token(payload: bytes) -> Any:
    """The clientToken of a payload, if it is a JSON object with one."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body.get("clientToken") if isinstance(body, dict) else None
