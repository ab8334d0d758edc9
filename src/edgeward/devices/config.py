"""Device gateway configuration: the top-level `devices:` section and a route's `devices:`.

```yaml
redis: redis://127.0.0.1:6379/0
devices: {shards: 16, stream_maxlen: 100000}
routes:
  - match: {path_prefix: /devices/}
    devices: {own_device_only: true}
    filters: [{key_auth: {}}]
```
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from edgeward.ratelimit.config import RateLimitConfig
from edgeward.values import Duration, Size, doc

DEFAULT_KEY_PREFIX = "edgeward:dev"
# Streams (and shadow keys) are partitioned by a hash of the device id: 16 shards spread a
# fleet over a Redis Cluster's nodes while keeping per-shard consumer groups few (Kafka topics
# and Azure IoT Hub's event hub both default to a handful of partitions: Azure 4, max 32).
DEFAULT_SHARDS = 16
# XADD MAXLEN ~: a change stream keeps about this many entries (Redis trims whole nodes).
DEFAULT_STREAM_MAXLEN = 100_000
# A shadow call may wait on Redis longer than a limiter decision (50 ms): it is the request.
DEFAULT_TIMEOUT = 1.0
# AWS IoT Device Shadow: 8 KB per classic shadow document's state (desired + reported).
DEFAULT_MAX_DOCUMENT_BYTES = 8 * 1024
# Optimistic CAS: rounds of read, apply, compare-and-set before 503 under heavy contention.
DEFAULT_CAS_ATTEMPTS = 8
# Telemetry messages per shard stream.
DEFAULT_TELEMETRY_MAXLEN = 1_000_000
# A telemetry message's idempotency key is remembered this long: a resend within it is
# stored once (AWS IoT's MQTT persistent-session redelivery window is 1 h).
DEFAULT_DEDUP_TTL = 3600.0
# Long poll: the longest a GET .../delta?wait= may hold (AWS API Gateway caps at 29 s).
DEFAULT_MAX_WAIT = 30.0
# AWS IoT's topics are $aws/things/...: AWS IoT is the broker, and MQTT reserves $-topics to the
# broker (MQTT 3.1.1 section 4.7.2: a server SHOULD prevent clients exchanging messages on
# them). Through a general broker the device and the gateway are both clients, so the prefix
# has no `$`; mosquitto 2.0 also delivers no $-topic to a shared subscription (measured), which
# several gateways need.
# SSE heartbeat comment: the HTML standard's server-sent events section advises a comment
# "every 15 seconds or so" to keep proxies from closing an idle stream.
DEFAULT_HEARTBEAT = 15.0
# Delta streams (SSE) one device may hold open per worker: a device reconnecting before its
# old stream has been noticed dead needs a second; AWS IoT allows one connection per client id.
DEFAULT_MAX_STREAMS = 2
DEFAULT_TOPIC_PREFIX = "edgeward/things"
# Commands waiting for a device, and how long after the newest they are kept: Azure IoT Hub's
# cloud-to-device queue holds at most 50 messages per device, with a default TTL of one hour.
DEFAULT_MAX_PENDING_COMMANDS = 50
DEFAULT_COMMAND_TTL = 3600.0
# MQTT 5 shared subscription group: each message goes to one gateway of the fleet.
DEFAULT_SHARE_GROUP = "edgeward"
DEFAULT_MQTT_KEEPALIVE = 30.0
# A change-stream entry another gateway took and has not acknowledged for this long is claimed
# (XAUTOCLAIM) and its delta published here: the gateway died or lost its broker. Amazon SQS's
# default visibility timeout is 30 s; a live gateway acknowledges within milliseconds.
DEFAULT_CLAIM_IDLE = 30.0


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str = field(default="127.0.0.1", metadata=doc("the MQTT broker's host"))
    port: int = field(default=1883, metadata=doc("the broker's port (IANA MQTT: 1883)"))
    topic_prefix: str = field(
        default=DEFAULT_TOPIC_PREFIX,
        metadata=doc("shadow topics are PREFIX/{id}/shadow[/name/{name}]/update|get, as "
                     "AWS IoT's $aws/things (no `$`: see docs/devices.md)"))
    share_group: str | None = field(
        default=DEFAULT_SHARE_GROUP,
        metadata=doc("subscribe as $share/GROUP/... so each message reaches one gateway; "
                     "null = every gateway gets every message"))
    keepalive: Duration = field(default=DEFAULT_MQTT_KEEPALIVE,
                                metadata=doc("MQTT keep-alive (paho's default 60 s)"))
    client_id: str | None = field(
        default=None, metadata=doc("MQTT client id; default edgeward-<host>-<pid>"))
    claim_idle: Duration = field(
        default=DEFAULT_CLAIM_IDLE,
        metadata=doc("claim (XAUTOCLAIM) delta entries another gateway left unacknowledged "
                     "this long, checked every claim_idle/2 (Amazon SQS visibility: 30 s)"))
    rate_limit: RateLimitConfig | None = field(
        default=None,
        metadata=doc("per device: the requests and telemetry messages a device may publish "
                     "(the key is always the device id); over it: rejected 429 rate_limited"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not 1 <= self.port <= 65535:
            problems.append(("port", f"must be 1-65535, got {self.port}"))
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            problems.append(("topic_prefix", "must be non-empty without wildcards + or #"))
        for key in ("keepalive", "claim_idle"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        if importlib.util.find_spec("aiomqtt") is None:
            problems.append(("host", "the MQTT bridge needs aiomqtt: pip install "
                                     "'edgeward[mqtt]'"))
        return problems


@dataclass(frozen=True, kw_only=True)
class DevicesConfig:
    key_prefix: str = field(default=DEFAULT_KEY_PREFIX,
                            metadata=doc("prefix of shadow, change-stream and telemetry keys"))
    shards: int = field(default=DEFAULT_SHARDS,
                        metadata=doc("streams and keys are partitioned by crc32(device) % shards"))
    stream_maxlen: int = field(default=DEFAULT_STREAM_MAXLEN,
                               metadata=doc("approximate length each change stream is kept at"))
    timeout: Duration = field(default=DEFAULT_TIMEOUT, metadata=doc("deadline of a store call"))
    max_document_bytes: Size = field(
        default=DEFAULT_MAX_DOCUMENT_BYTES,
        metadata=doc("largest update body and stored shadow (AWS IoT: 8 KB)"))
    cas_attempts: int = field(default=DEFAULT_CAS_ATTEMPTS,
                              metadata=doc("compare-and-set rounds before 503 store_contention"))
    telemetry_maxlen: int = field(default=DEFAULT_TELEMETRY_MAXLEN,
                                  metadata=doc("approximate length of each telemetry stream"))
    dedup_ttl: Duration = field(default=DEFAULT_DEDUP_TTL,
                                metadata=doc("how long a telemetry idempotency key is kept"))
    max_pending_commands: int = field(
        default=DEFAULT_MAX_PENDING_COMMANDS,
        metadata=doc("commands waiting for one device's acknowledgement; a new one beyond is "
                     "refused 429 device_commands_exceeded (Azure IoT Hub: 50)"))
    command_ttl: Duration = field(
        default=DEFAULT_COMMAND_TTL,
        metadata=doc("a device's pending commands are kept this long after the newest (Azure "
                     "IoT Hub cloud-to-device TTL: 1 h)"))
    session_rate_limit: RateLimitConfig | None = field(
        default=None,
        metadata=doc("per device: the requests and telemetry messages a WebSocket session may "
                     "send (the key is always the device id; acknowledgements are free); "
                     "over it: rejected 429 rate_limited"))
    mqtt: MqttConfig | None = field(
        default=None, metadata=doc("bridge shadow topics on this broker; off by default"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.key_prefix or any(c in self.key_prefix for c in "{} "):
            problems.append(("key_prefix", "must be non-empty without braces or spaces"))
        for key in ("shards", "stream_maxlen", "cas_attempts", "telemetry_maxlen",
                    "max_pending_commands"):
            if getattr(self, key) < 1:
                problems.append((key, "must be at least 1"))
        for key in ("timeout", "dedup_ttl", "command_ttl"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        if self.max_document_bytes < 64:
            problems.append(("max_document_bytes", "must be at least 64"))
        return problems


@dataclass(frozen=True, kw_only=True)
class RouteDevicesConfig:
    """A route's `devices:`: the route answers the shadow API (docs/devices.md)."""

    own_device_only: bool = field(
        default=False,
        metadata=doc("a consumer may only touch the device named like itself (AWS IoT "
                     "policies' ${iot:Connection.Thing.ThingName}); needs authentication"))
    max_wait: Duration = field(default=DEFAULT_MAX_WAIT,
                               metadata=doc("longest long poll (GET .../delta?wait=)"))
    telemetry: bool = field(default=True,
                            metadata=doc("accept POST /devices/{id}/telemetry"))
    commands: bool = field(
        default=True,
        metadata=doc("accept POST/GET /devices/{id}/commands and DELETE "
                     "/devices/{id}/commands/{command id}"))
    heartbeat: Duration = field(
        default=DEFAULT_HEARTBEAT,
        metadata=doc("a delta stream (SSE) sends a comment after this long without an event "
                     "(HTML standard: every 15 s or so)"))
    max_streams: int = field(
        default=DEFAULT_MAX_STREAMS,
        metadata=doc("delta streams (SSE) one device may hold open per worker; over it 429 "
                     "device_streams_exceeded"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in ("max_wait", "heartbeat"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        if self.max_streams < 1:
            problems.append(("max_streams", "must be at least 1"))
        return problems
