"""Device requests answered the same way whatever carried them (MQTT or a device's WebSocket):
a shadow `get` or `update`, or a telemetry message, in AWS IoT's payload shapes.

An `Answer` is accepted (the `accepted` document) or rejected (`{"code": status, "error":
<stable code>, "message", "clientToken"}`, and `current` for a version conflict: the document
to rebase on); the transport decides where it goes (a topic, a WebSocket message).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final

from edgeward.devices import commands
from edgeward.devices.shadow import Result, UpdateError, metadata_of, parse_update
from edgeward.devices.store import ShadowStore, StoreError, TooLarge
from edgeward.ratelimit.limiter import Limiter

# Device ids and shadow names: 1-128 of A-Z a-z 0-9 : _ . - (AWS IoT thing names' alphabet).
ID: Final = re.compile(r"[A-Za-z0-9:_.-]{1,128}")
# Path words that cannot be shadow names.
RESERVED_NAMES: Final = frozenset({"delta"})


def valid_id(text: str) -> bool:
    return ID.fullmatch(text) is not None


def valid_name(text: str) -> bool:
    """A named shadow's name (the classic shadow is "")."""
    return valid_id(text) and text not in RESERVED_NAMES


@dataclass(slots=True)
class Answer:
    accepted: bool
    doc: dict[str, Any]


def rejection(status: int, code: str, token: Any, message: str | None = None,
              **extra: Any) -> Answer:
    return Answer(False, {"code": status, "error": code, "message": message or code,
                          "clientToken": token, **extra})


async def shadow_request(store: ShadowStore, device: str, name: str, op: str,
                         body: Any, writer: str) -> Answer:
    """`op` ("get" or "update") on the shadow `name` of `device`; `body` is the decoded
    payload ({} when empty); `writer` stamps an update whose body names none."""
    if not isinstance(body, dict):
        return rejection(400, "invalid_shadow_update", None, "the payload must be a JSON object")
    token = body.get("clientToken")
    try:
        if op == "get":
            shadow, _ = await store.read(device, name)
            if shadow is None:
                return rejection(404, "shadow_not_found", token)
            doc = shadow.document()
            doc["clientToken"] = token
            return Answer(True, doc)
        update = parse_update(body, writer=str(body.get("writer") or writer), version=None)
        result = await store.update(device, name, update, time.time())
    except (UpdateError, ValueError) as exc:
        return rejection(400, "invalid_shadow_update", token, str(exc))
    except TooLarge as exc:
        return rejection(413, "shadow_too_large", token, str(exc))
    except StoreError as exc:
        return rejection(503, "device_store_unavailable", token, str(exc))
    return update_answer(body, result, token)


def update_answer(body: dict[str, Any], result: Result, token: Any) -> Answer:
    shadow = result.shadow
    if result.outcome == "conflict":
        return rejection(409, "version_conflict", token,
                         f"the shadow is at version {shadow.version}",
                         current=shadow.document())
    return Answer(True, {
        "state": body.get("state"),
        "metadata": metadata_of(shadow.metadata(), body.get("state") or {}),
        "version": shadow.version, "clock": shadow.clock, "timestamp": shadow.timestamp,
        "outcome": result.outcome, "suppressed": list(result.suppressed),
        "clientToken": token})


async def command_done(store: ShadowStore, device: str, body: Any) -> Answer | None:
    """A device's acknowledgement of a command (`{"id": ...}`): None once the command is
    forgotten (or was not pending), else the rejection to send back."""
    command_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(command_id, str) or not commands.valid_id(command_id):
        return rejection(400, "invalid_message", None,
                         "a command acknowledgement needs the command's `id`")
    try:
        await commands.done(store, device, command_id)
    except StoreError as exc:
        return rejection(503, "device_store_unavailable", None, str(exc))
    return None


async def admitted(limiter: Limiter, device: str) -> bool:
    """Whether the device's rate limit (keyed by its id) lets one more message through."""
    now = asyncio.get_running_loop().time()
    decision = limiter.decide_sync(device, now)
    if decision is None:
        decision = await limiter.decide(device, now)
    return bool(decision.allowed)


def telemetry_key(payload: bytes) -> str | None:
    """The idempotency key of a telemetry message (its `id`), None if it has none."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return str(body["id"]) if isinstance(body, dict) and "id" in body else None


async def telemetry(store: ShadowStore, device: str, payload: bytes) -> Answer:
    """Store a telemetry message once per (device, id): accepted `{"id", "stored", "entry"}`."""
    key = telemetry_key(payload)
    if key is None:
        return rejection(400, "invalid_shadow_update", None,
                         "telemetry needs a JSON object with an `id` (its idempotency key)")
    try:
        stored, entry = await store.ingest(device, key, payload)
    except StoreError as exc:
        # With the message's id, so the device knows which one to send again.
        return rejection(503, "device_store_unavailable", None, str(exc), id=key)
    return Answer(True, {"id": key, "stored": stored, "entry": entry})
