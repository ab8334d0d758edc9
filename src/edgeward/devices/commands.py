"""Commands from applications to devices, kept until the device acknowledges them.

`POST .../devices/{id}/commands` stores a command in the device's pending stream
(`PREFIX:{S}:commands:DEVICE`, expiring `command_ttl` after the newest) and announces it on the
shard's change stream (kind `command`, version 0) in one script, so every gateway's change feed
and the MQTT bridge see it. A connected device gets it at once, an offline one when it connects
(a WebSocket session sends what is pending) or asks (`GET .../commands`); it acknowledges with
the command's id (`command_ack` in a session, `.../commands/ack` over MQTT, `DELETE
.../commands/{id}` over HTTP), which removes it. At-least-once: a command not yet acknowledged
is sent again on the next connection, so a device drops ids it has done. Over
`max_pending_commands` waiting, a new command is refused (HTTP 429), never dropped.

Precedent: Azure IoT Hub cloud-to-device messages (a per-device queue of at most 50, a default
TTL of one hour, completed by the device); AWS IoT Commands (a command execution per device,
acknowledged by the device over MQTT).
"""

from __future__ import annotations

import json
from typing import Any

from edgeward.devices.store import ShadowStore, as_text
from edgeward.ratelimit.redis_store import LuaScript

# KEYS: the device's pending commands, the shard's change stream. ARGV: max pending, ttl ms,
# device, the command (JSON), timestamp, change stream maxlen.
# Returns {1, id} when stored, {0, pending count} when the device has max pending already.
SEND_SCRIPT = LuaScript("""
local n = redis.call('XLEN', KEYS[1])
if n >= tonumber(ARGV[1]) then return {0, tostring(n)} end
local id = redis.call('XADD', KEYS[1], '*', 'command', ARGV[4], 'timestamp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'device', ARGV[3], 'shadow', '',
           'version', '0', 'event', '{"kind":"command","id":"' .. id .. '","timestamp":' ..
           ARGV[5] .. ',"command":' .. ARGV[4] .. '}')
return {1, id}
""")


class CommandsFull(Exception):
    """The device has `max_pending_commands` waiting (HTTP 429 device_commands_exceeded)."""


def pending_key(store: ShadowStore, device: str) -> str:
    return f"{store.config.key_prefix}:{{{store.shard(device)}}}:commands:{device}"


def message(command_id: str, command: Any, timestamp: float) -> dict[str, Any]:
    """What a device receives for one command (a session adds "type": "command")."""
    return {"id": command_id, "command": command, "timestamp": timestamp}


async def send(store: ShadowStore, device: str, command: str, now: float) -> str:
    """Store `command` (JSON text) for `device`: its id. Raises CommandsFull, StoreError."""
    cfg = store.config
    keys = (pending_key(store, device), store.changes_key(device))
    args = (cfg.max_pending_commands, int(cfg.command_ttl * 1000), device, command, repr(now),
            cfg.stream_maxlen)
    stored, value = await store.call(lambda: SEND_SCRIPT.call(store.client, keys, args))
    if not int(stored):
        raise CommandsFull(f"device {device!r} has {as_text(value)} commands waiting (at most "
                           f"{cfg.max_pending_commands})")
    return as_text(value)


async def pending(store: ShadowStore, device: str) -> list[dict[str, Any]]:
    """The device's unacknowledged commands, oldest first."""
    entries = await store.call(lambda: store.client.xrange(pending_key(store, device)))
    return [message(as_text(entry_id), json.loads(fields[b"command"]),
                    float(fields[b"timestamp"])) for entry_id, fields in entries]


async def done(store: ShadowStore, device: str, command_id: str) -> bool:
    """The device did `command_id`: forget it. False when it was not pending."""
    removed = await store.call(lambda: store.client.xdel(pending_key(store, device),
                                                          command_id))
    return bool(removed)


def valid_id(text: str) -> bool:
    """A Redis stream id: MS-SEQ."""
    ms, dash, seq = text.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and len(text) <= 41


