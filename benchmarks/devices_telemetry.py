"""Figure 3 of benchmarks/devices.py: telemetry into Redis Streams, none lost, none twice.

DEVICES simulated devices send telemetry readings, each with its idempotency key, through
three gateways: over HTTP (`POST /devices/{id}/telemetry` with `Idempotency-Key`, keep-alive
connections, each message to a gateway picked at random) and over MQTT (`.../telemetry` with
the key as `id`, the broker's shared subscription spreading them over the three bridges).
RESEND of the messages are sent a second time with the same key (over HTTP through another
gateway). A device resends whatever got no answer (at-least-once: an MQTT message whose ack
did not come within ACK_WAIT is published again).

Then the telemetry streams are read back with XRANGE: every unique key must be there exactly
once (lost = sent keys not in the streams, duplicated = entries beyond the first per key), and
the gateways' `edgeward_device_telemetry_total{result}` counters must add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiomqtt
import redis
from devices_kit import PREFIX, Conn, metric_sum, telemetry_reading
from tests.support.gateway import GatewayProcess

from edgeward.devices.mqtt_bridge import NODELAY

DEVICES = 300
HTTP_CLIENTS = 6       # each with a keep-alive connection to every gateway
RESEND = 0.1
MQTT_INFLIGHT = 64
ACK_WAIT = 5.0
ACK_READERS = 4       # connections reading the acks, each for a share of the devices
ROUNDS = 3             # resend rounds for unanswered MQTT messages
METRIC = "edgeward_device_telemetry_total"
OUTBOX = "edgeward_device_outbox_messages_total"


@dataclass
class Sent:
    keys: set[tuple[str, str]] = field(default_factory=set)   # (device, key), unique
    answers: int = 0          # messages answered (first copies and resends)
    resends: int = 0          # deliberate second copies
    retries: int = 0          # copies sent again because no answer came
    seconds: float = 0.0


async def http_part(ports: list[int], run: str, messages: int) -> Sent:
    sent = Sent()
    work = [(f"tm-{n % DEVICES}", f"{run}-h{n}") for n in range(messages)]
    start = time.perf_counter()

    async def client(share: list[tuple[str, str]], rng: random.Random) -> None:
        conns = {p: Conn(p) for p in ports}
        for device, key in share:
            reading = json.dumps(telemetry_reading(rng, key)).encode()
            port = rng.choice(ports)
            copies = [port] + ([rng.choice([p for p in ports if p != port])]
                               if rng.random() < RESEND else [])
            sent.resends += len(copies) - 1
            sent.keys.add((device, key))
            for target in copies:
                while True:   # at-least-once: resend until answered
                    try:
                        ans = await conns[target].call(
                            "POST", f"/devices/{device}/telemetry", reading,
                            {"idempotency-key": key})
                    except (OSError, TimeoutError, asyncio.IncompleteReadError):
                        conns[target].close()
                        sent.retries += 1
                        continue
                    assert ans.status in (200, 202), (ans.status, ans.body[:200])
                    sent.answers += 1
                    break
        for c in conns.values():
            c.close()

    await asyncio.gather(*(client(work[i::HTTP_CLIENTS], random.Random(i))
                           for i in range(HTTP_CLIENTS)))
    sent.seconds = time.perf_counter() - start
    return sent


async def mqtt_part(broker: int, run: str, messages: int) -> Sent:
    """Devices publish on one connection and read their acks on ACK_READERS others, each
    subscribed to the ack topics of its share of the devices: the broker queues at most
    1000 messages per slow subscriber (mosquitto's max_queued_messages) and drops the rest,
    which one connection reading every device's acks under load runs into."""
    sent, payloads, copies = _plan(run, messages)
    acked: Counter[str] = Counter()
    last = [0.0]
    limit = asyncio.Semaphore(MQTT_INFLIGHT)

    async def receive(reader: aiomqtt.Client) -> None:
        async for msg in reader.messages:
            payload = msg.payload
            assert isinstance(payload, bytes)
            acked[json.loads(payload)["id"]] += 1
            last[0] = time.perf_counter()

    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(_mqtt(broker, f"bench-telemetry-{run}"))
        client.pending_calls_threshold = 2 * MQTT_INFLIGHT   # no warning: bounded below
        readers = []
        for r in range(ACK_READERS):
            reader = await stack.enter_async_context(_mqtt(broker, f"bench-acks-{run}-{r}"))
            await reader.subscribe([(f"{PREFIX}/tm-{n}/telemetry/accepted", 1)
                                    for n in range(r, DEVICES, ACK_READERS)])
            readers.append(asyncio.get_running_loop().create_task(receive(reader)))

        async def publish(key: str) -> None:
            async with limit:
                await client.publish(*payloads[key], qos=1)

        start = time.perf_counter()
        try:
            await asyncio.gather(*(publish(k) for k in copies))
            for attempt in range(ROUNDS):
                done = await _all_acked(acked, payloads, len(copies) + sent.retries)
                if attempt == 0:    # the rate: the first pass, to its last ack
                    sent.answers, sent.seconds = sum(acked.values()), last[0] - start
                if done:
                    break
                missing = [k for k in payloads if not acked[k]]
                sent.retries += len(missing)
                await asyncio.gather(*(publish(k) for k in missing))
        finally:
            for task in readers:
                task.cancel()
    return sent


def _plan(run: str, messages: int) -> tuple[Sent, dict[str, tuple[str, str]], list[str]]:
    """The MQTT messages (key -> topic, payload) and the copies to send (RESEND twice)."""
    sent = Sent()
    rng = random.Random(run)
    payloads: dict[str, tuple[str, str]] = {}
    for n in range(messages):
        device, key = f"tm-{n % DEVICES}", f"{run}-m{n}"
        payloads[key] = (f"{PREFIX}/{device}/telemetry", json.dumps(telemetry_reading(rng, key)))
        sent.keys.add((device, key))
    copies = list(payloads) + [k for k in payloads if rng.random() < RESEND]
    sent.resends = len(copies) - len(payloads)
    return sent, payloads, copies


def _mqtt(broker: int, identifier: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker, identifier=identifier,
                          protocol=aiomqtt.ProtocolVersion.V5, socket_options=NODELAY)


async def _all_acked(acked: Counter[str], keys: dict[str, tuple[str, str]],
                     copies: int) -> bool:
    """Wait up to ACK_WAIT for an ack of every copy; True when every key has one."""
    deadline = time.monotonic() + ACK_WAIT
    while sum(acked.values()) < copies and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return all(acked[k] for k in keys)


def stored(redis_url: str, shards: int, run: str) -> Counter[tuple[str, str]]:
    """(device, key) -> entries in the telemetry streams, for this run's keys."""
    client = redis.Redis.from_url(redis_url)
    out: Counter[tuple[str, str]] = Counter()
    try:
        for s in range(shards):
            for _, fields in client.xrange(f"edgeward:dev:{{{s}}}:telemetry"):
                key = fields[b"id"].decode()
                if key.startswith(run + "-"):
                    out[(fields[b"device"].decode(), key)] += 1
    finally:
        client.close()
    return out


async def figure(gws: list[GatewayProcess], broker: int, redis_url: str, shards: int,
                 messages: int) -> list[str]:
    ports = [gw.port for gw in gws]
    before = {r: metric_sum(gws, METRIC, f'result="{r}"') for r in ("stored", "duplicate")}
    dropped = metric_sum(gws, OUTBOX, 'class="ack",outcome="dropped"')
    run = f"r{random.randrange(10**6)}"
    h = await http_part(ports, run, messages)
    m = await mqtt_part(broker, run, messages)
    counts = stored(redis_url, shards, run)
    after = {r: metric_sum(gws, METRIC, f'result="{r}"') for r in ("stored", "duplicate")}
    dropped = metric_sum(gws, OUTBOX, 'class="ack",outcome="dropped"') - dropped
    unique = h.keys | m.keys
    lost = len(unique - set(counts))
    duplicated = sum(n - 1 for n in counts.values())
    foreign = len(set(counts) - unique)
    extra = h.resends + h.retries + m.resends + m.retries
    return [
        f"telemetry: {DEVICES} devices, {messages} messages over HTTP ({HTTP_CLIENTS} "
        f"keep-alive clients x {len(ports)} gateways) and {messages} over MQTT, "
        f"{RESEND:.0%} resent with the same key (HTTP: through another gateway)",
        f"  accepted: HTTP {h.answers / h.seconds:.0f} msg/s ({h.answers} answers in "
        f"{h.seconds:.1f} s, {h.retries} retried), MQTT {m.answers / m.seconds:.0f} msg/s "
        f"({m.answers} acks in {m.seconds:.1f} s; then {m.retries} resent for want of an ack, "
        f"outbox acks dropped {dropped:.0f})",
        f"  XRANGE over {shards} telemetry streams: {len(unique)} unique keys sent, "
        f"{len(counts)} stored, {foreign} unknown: lost={lost} duplicated={duplicated}",
        f"  {METRIC}: stored +{after['stored'] - before['stored']:.0f}, duplicate "
        f"+{after['duplicate'] - before['duplicate']:.0f} (copies beyond the first: {extra})",
    ]
