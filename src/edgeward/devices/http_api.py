"""The shadow API on the data plane: a route's `devices:` ends its chain in `DeviceApi`.

    GET    .../devices/{id}/shadow[/{name}]            the document (ETag: "version")
    PATCH  .../devices/{id}/shadow[/{name}]            a merge-patch update (If-Match: version)
    DELETE .../devices/{id}/shadow[/{name}]            clear desired and reported
    GET    .../devices/{id}/shadow[/{name}]/delta      the delta; ?version=N&wait=S long-polls;
                                                       Accept: text/event-stream streams (SSE)
    POST   .../devices/{id}/telemetry                  append once per Idempotency-Key
    GET    .../devices/{id}/connect                    a WebSocket session (sessions.py)
    POST   .../devices/{id}/commands                   a command for the device (commands.py)
    GET    .../devices/{id}/commands                   its pending commands
    DELETE .../devices/{id}/commands/{command}         the device did it

It runs last (ORDER_RESPOND), after the route's CORS, IP, authentication and rate-limit
filters, so they apply to devices and applications as to any request. It reads a request
body itself (its `on_request_body` holds the bytes back and completes a future at the end):
the route has nothing to forward to.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any, ClassVar, Final

from edgeward.devices import commands
from edgeward.devices.config import RouteDevicesConfig
from edgeward.devices.requests import valid_id, valid_name
from edgeward.devices.sessions import DeviceSession, DeviceSessions
from edgeward.devices.shadow import Result, Shadow, Update, UpdateError, parse_update
from edgeward.devices.sse import DeltaStreams, wants_events
from edgeward.devices.store import ShadowStore, StoreError, TooLarge
from edgeward.filters.api import ORDER_RESPOND, Filter, Reply, Request, RequestResult
from edgeward.http.errors import error_body
from edgeward.http.message import NO_BODY

_BODY: Final = "devices.body"
# Named shadows one WebSocket session follows (AWS IoT: 10 named shadows per thing by
# default, a soft limit).
MAX_SESSION_SHADOWS: Final = 10
_JSON: Final = (("content-type", "application/json"),)


class _Body:
    __slots__ = ("parts", "size", "done")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


def parse_path(path: str) -> tuple[str, str, str] | None:
    """(device, shadow name ("" = classic), resource: shadow | delta | telemetry)."""
    at = path.find("/devices/")
    if at < 0:
        return None
    parts = path[at + len("/devices/"):].split("/")
    if not parts or not valid_id(parts[0]):
        return None
    device, rest = parts[0], parts[1:]
    if rest == ["telemetry"] or rest == ["connect"] or rest == ["commands"]:
        return device, "", rest[0]
    if len(rest) == 2 and rest[0] == "commands" and commands.valid_id(rest[1]):
        return device, rest[1], "command"
    if not rest or rest[0] != "shadow" or len(rest) > 4:
        return None
    rest = rest[1:]
    resource = "shadow"
    if rest and rest[-1] == "delta":
        resource, rest = "delta", rest[:-1]
    if not rest:
        return device, "", resource
    if len(rest) == 1 and valid_name(rest[0]):
        return device, rest[0], resource
    return None


def _json(status: int, doc: object, version: int | None = None) -> Reply:
    headers = list(_JSON)
    if version is not None:
        headers.append(("etag", f'"{version}"'))
    return Reply(status, json.dumps(doc, separators=(",", ":")), headers)


def _minimal(req: Request) -> bool:
    """`Prefer: return=minimal` (RFC 7240 §4.2): the answer to a write leaves the document
    out (a device reporting a field need not download its whole shadow back)."""
    return any("return=minimal" in v.replace(" ", "").lower()
               for v in req.headers.get_all("prefer"))


def _if_match(req: Request) -> int | None | Reply:
    raw = req.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        return Reply.error(400, "invalid_shadow_update",
                           f"If-Match must be a shadow version (\"N\"), got {raw!r}")
    return int(text)


class DeviceApi(Filter):
    """See the module docstring; one per route with `devices:`."""

    order: ClassVar[int] = ORDER_RESPOND

    def __init__(self, store: ShadowStore, config: RouteDevicesConfig,
                 sessions: DeviceSessions) -> None:
        self.name = "devices"
        self.store = store
        self.sessions = sessions
        self.config = config
        self.limit = store.config.max_document_bytes
        self.clock = time.time  # metadata timestamps are wall-clock seconds, as AWS's
        self.streams = DeltaStreams(sessions.feed, config.heartbeat, config.max_streams)

    def on_request(self, req: Request) -> RequestResult:
        found = parse_path(req.path)
        if found is None:
            return Reply.error(404, "route_not_found",
                               "device API paths: /devices/{id}/shadow[/{name}][/delta], "
                               "/devices/{id}/telemetry, /devices/{id}/connect, "
                               "/devices/{id}/commands[/{command}]")
        device, name, resource = found
        if self.config.own_device_only and (req.consumer is None
                                             or req.consumer.name != device):
            return Reply.error(403, "forbidden", "a device may only use its own shadow")
        method = req.method
        allowed = {"shadow": ("GET", "PATCH", "POST", "DELETE"), "delta": ("GET",),
                   "telemetry": ("POST",) if self.config.telemetry else (),
                   "connect": ("GET",),
                   "commands": ("GET", "POST") if self.config.commands else (),
                   "command": ("DELETE",) if self.config.commands else ()}[resource]
        if method not in allowed:
            return Reply.error(405, "method_not_allowed", f"{resource} takes {allowed}",
                               [("allow", ", ".join(allowed))])
        if resource == "delta":
            return self._delta(req, device, name)
        if resource == "connect":
            return self._connect(req, device)
        if resource == "command":
            return self._command_done(device, name)
        if resource == "commands" and method == "GET":
            return self._pending(device)
        if method == "GET":
            return self._get(device, name)
        if method == "DELETE":
            return self._delete(req, device, name)
        return self._with_body(req, device, name, resource)

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        body = req.vars.get(_BODY)
        if not isinstance(body, _Body):
            body = req.vars[_BODY] = _Body()
        body.size += len(data)
        if body.size <= self.limit:
            body.parts.append(data)
        if end and not body.done.done():
            body.done.set_result(None)
        return b""

    # -- handlers --------------------------------------------------------------------------

    async def _with_body(self, req: Request, device: str, name: str, resource: str) -> Reply:
        raw = b""
        if req.body_length != NO_BODY:
            body = req.vars.get(_BODY)
            if not isinstance(body, _Body):
                body = req.vars[_BODY] = _Body()
            await body.done
            if body.size > self.limit:
                return Reply.error(413, "shadow_too_large",
                                   f"the body is {body.size} bytes, above {self.limit}")
            raw = b"".join(body.parts)
        if resource == "telemetry":
            return await self._telemetry(req, device, raw)
        if resource == "commands":
            return await self._command(device, raw)
        try:
            parsed = json.loads(raw)
        except ValueError:
            return Reply.error(400, "invalid_shadow_update", "the body is not JSON")
        expected = _if_match(req)
        if isinstance(expected, Reply):
            return expected
        if not isinstance(parsed, dict):
            return Reply.error(400, "invalid_shadow_update", "the body must be a JSON object")
        writer = req.consumer.name if req.consumer is not None else str(
            parsed.get("writer") or "http")
        try:
            update = parse_update(parsed, writer=writer, version=expected)
        except UpdateError as exc:
            return Reply.error(400, "invalid_shadow_update", str(exc))
        return await self._store(req, device, name, update)

    async def _store(self, req: Request, device: str, name: str, update: Update,
                     kind: str = "update") -> Reply:
        try:
            result = await self.store.update(device, name, update, self.clock(), kind)
        except TooLarge as exc:
            return Reply.error(413, "shadow_too_large", str(exc))
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        return self._answer(req, result)

    def _answer(self, req: Request, result: Result) -> Reply:
        doc = result.shadow.document()
        if result.outcome == "conflict":
            body = json.loads(error_body("version_conflict", req.request_id,
                                         f"expected version {req.headers.get('if-match')}, "
                                         f"the shadow is at {result.shadow.version}"))
            body["current"] = doc
            return Reply(409, json.dumps(body, separators=(",", ":")),
                         [("content-type", "application/problem+json"),
                          ("etag", f'"{result.shadow.version}"')])
        if _minimal(req):
            shadow = result.shadow
            reply = _json(200, {"version": shadow.version, "clock": shadow.clock,
                                "outcome": result.outcome,
                                "suppressed": list(result.suppressed)}, shadow.version)
            reply.fields.append((b"preference-applied", b"return=minimal"))
            return reply
        doc["outcome"] = result.outcome
        doc["suppressed"] = list(result.suppressed)
        return _json(200, doc, result.shadow.version)

    async def _get(self, device: str, name: str) -> Reply:
        try:
            shadow, _ = await self.store.read(device, name)
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        if shadow is None:
            return Reply.error(404, "shadow_not_found", f"no shadow {name or 'classic'!r} "
                                                        f"for device {device!r}")
        return _json(200, shadow.document(), shadow.version)

    async def _delete(self, req: Request, device: str, name: str) -> Reply:
        expected = _if_match(req)
        if isinstance(expected, Reply):
            return expected
        writer = req.consumer.name if req.consumer is not None else "http"
        update = Update(clear=frozenset({"desired", "reported"}), writer=writer,
                        version=expected)
        return await self._store(req, device, name, update, kind="delete")

    async def _command(self, device: str, raw: bytes) -> Reply:
        try:
            text = json.dumps(json.loads(raw), separators=(",", ":"))
        except ValueError:
            return Reply.error(400, "invalid_shadow_update", "a command is a JSON document")
        try:
            command_id = await commands.send(self.store, device, text, self.clock())
        except commands.CommandsFull as exc:
            return Reply.error(429, "device_commands_exceeded", str(exc))
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        return _json(202, {"id": command_id})

    async def _pending(self, device: str) -> Reply:
        try:
            waiting = await commands.pending(self.store, device)
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        return _json(200, {"commands": waiting})

    async def _command_done(self, device: str, command_id: str) -> Reply:
        try:
            removed = await commands.done(self.store, device, command_id)
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        if not removed:
            return Reply.error(404, "command_not_found",
                               f"device {device!r} has no pending command {command_id!r}")
        return Reply(204)

    def _connect(self, req: Request, device: str) -> Reply:
        """A device's WebSocket session: the classic shadow's deltas and those of the named
        shadows in `?shadows=a,b`."""
        names = [n for n in (req.query("shadows") or "").split(",") if n]
        bad = [n for n in names if not valid_name(n)]
        if bad or len(names) > MAX_SESSION_SHADOWS:
            return Reply.error(400, "invalid_shadow_update",
                               f"shadows= takes up to {MAX_SESSION_SHADOWS} shadow names; "
                               f"not names: {bad}")
        writer = req.consumer.name if req.consumer is not None else device
        session = DeviceSession(self.sessions, device, ("", *dict.fromkeys(names)), writer)
        return Reply.websocket(session)

    def _delta(self, req: Request, device: str, name: str) -> Reply | Awaitable[Reply]:
        if wants_events(req):
            return self.streams.reply(req, device, name)
        after, wait = req.query("version"), req.query("wait")
        return self._poll(device, name, _number(after), _number(wait))

    async def _poll(self, device: str, name: str, after: float | None,
                    wait: float | None) -> Reply:
        try:
            if after is None or not wait:
                shadow, _ = await self.store.read(device, name)
            else:
                timeout = min(wait, self.config.max_wait)
                shadow = await self.sessions.feed.wait_change(device, name, int(after), timeout)
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        shadow = shadow or Shadow()
        doc: dict[str, Any] = {"version": shadow.version, "clock": shadow.clock,
                               "delta": shadow.state().get("delta", {})}
        return _json(200, doc, shadow.version)

    async def _telemetry(self, req: Request, device: str, raw: bytes) -> Reply:
        key = req.headers.get("idempotency-key") or req.request_id
        if not valid_id(key):
            return Reply.error(400, "invalid_shadow_update",
                               "Idempotency-Key must be 1-128 of A-Z a-z 0-9 : _ . -")
        try:
            stored, entry = await self.store.ingest(device, key, raw)
        except StoreError as exc:
            return Reply.error(503, "device_store_unavailable", str(exc))
        return _json(202 if stored else 200, {"stored": stored, "id": entry})


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None
