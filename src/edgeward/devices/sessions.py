"""Devices connected to the gateway directly over WebSocket: one long-lived session each.

`GET .../devices/{id}/connect` with a WebSocket handshake, on a route with `devices:` and
`websocket:`, after the route's filters (authentication, `own_device_only`, limits). Messages
are JSON text frames (docs/devices.md, "WebSocket sessions"):

device -> gateway                               gateway -> device
  {"type": "update", "shadow", "state", ...}      {"type": "accepted"|"rejected", "op", ...}
  {"type": "get", "shadow"}                       {"type": "delta", "shadow", "version", ...}
  {"type": "telemetry", "id", ...}                {"type": "telemetry_accepted", "id", ...}
  {"type": "ack", "shadow", "version"}            {"type": "command", "id", "command", ...}
  {"type": "command_ack", "id"}

Deltas are pushed from the worker's change feed (`feed.py`), one in flight per shadow: the
next goes out after the device acknowledges the last (`ack` with its version); changes made
meanwhile coalesce into the newest delta. An unacknowledged delta is sent again when the
device connects again (MQTT 5 resends only on reconnection too, §4.4). Commands
(`commands.py`) go out when sent and, those still pending, when the session opens; a
`command_ack` removes one. Everything sent waits in the worker's priority outbox
(`outbox.py`, lanes mode): commands, then replies and deltas, then telemetry
acknowledgements, bounded per device and in all. A second connection of a device replaces
the first (close 4000), as AWS IoT does for a client id: at once in the same worker, and
through an announcement on the shard's sessions stream (read by every worker's change feed)
when the first is on another worker or gateway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from typing import Any, Final

from edgeward.devices import commands, requests
from edgeward.devices.feed import ChangeFeed
from edgeward.devices.outbox import ACK, COMMAND, DELTA, Item, PriorityBuffer, Pushed
from edgeward.devices.requests import Answer, rejection, valid_name
from edgeward.devices.store import ShadowStore, StoreError
from edgeward.filters.api import WebSocket, WebSocketHandler
from edgeward.ratelimit.limiter import Limiter

log = logging.getLogger("edgeward.devices")

# Requests of one device waiting to be handled (they are handled in order, one at a time);
# beyond, a request is rejected 429 at once (MQTT brokers' max_inflight_messages: mosquitto
# 20, EMQX 32).
MAX_PENDING: Final = 32
REPLACED: Final = 4000   # close code: a newer connection of the same device took over
STORE_DOWN: Final = 1011


class DeviceSessions:
    """One worker's device sessions (at most one per device), their outbox and change feed;
    kept by the registry while `redis:` and `devices:` are unchanged."""

    def __init__(self, store: ShadowStore, limiter: Limiter | None = None) -> None:
        self.store = store
        self.limiter = limiter  # devices.session_rate_limit, keyed by device id
        self.feed = ChangeFeed(store)
        self.buffer = PriorityBuffer(lanes=True)
        self.sessions: dict[str, DeviceSession] = {}
        # edgeward_device_session_messages_total{kind} (docs/devices.md).
        self.stats = {"received": 0, "accepted": 0, "rejected": 0, "delta": 0, "acked": 0,
                      "replaced": 0}
        self.feed.on_session = self._announced

    def attach(self, session: DeviceSession) -> None:
        old = self.sessions.get(session.device)
        if old is not None:
            self._replace(old)
        self.sessions[session.device] = session
        self.feed.subscribe(session.device, session)

    def _announced(self, device: str, token: str, entry: str) -> None:
        """A session of `device` opened somewhere (announced on its shard's sessions
        stream): the one here is older if its own announcement came before."""
        session = self.sessions.get(device)
        if session is None or session.token == token or session.announced is None:
            return  # none here, our own, or ours is still being announced (so it is newer)
        if _stream_id(entry) > _stream_id(session.announced):
            self._replace(session)

    def _replace(self, old: DeviceSession) -> None:
        """A newer connection of the device took over: close `old` (4000)."""
        self.stats["replaced"] += 1
        self._forget(old)
        old.ws.close(REPLACED, "replaced by a newer connection")

    def detach(self, session: DeviceSession) -> None:
        if self.sessions.get(session.device) is session:
            self._forget(session)

    def _forget(self, session: DeviceSession) -> None:
        del self.sessions[session.device]
        self.feed.unsubscribe(session.device, session)
        self.buffer.forget(session.device)

    def stop_bridge(self) -> None:
        """The registry dropped this object (`devices:` or `redis:` changed): end every
        session (devices reconnect to the new configuration) and the feed."""
        self.feed.stop()
        for session in list(self.sessions.values()):
            session.ws.close(1001, "the device configuration changed")


class DeviceSession(WebSocketHandler):
    """One device's connection (see the module docstring)."""

    __slots__ = ("hub", "device", "shadows", "writer", "ws", "latest", "inflight", "inbox",
                 "task", "commands", "refused", "token", "announced")
    ws: WebSocket  # set by on_open

    def __init__(self, hub: DeviceSessions, device: str, shadows: tuple[str, ...],
                 writer: str) -> None:
        self.hub = hub
        self.device = device
        self.shadows = shadows
        self.writer = writer
        # Per shadow: the newest delta known (version, message; None once acknowledged) and
        # the version in flight (sent, not yet acknowledged).
        self.latest: dict[str, tuple[int, bytes | None]] = {}
        self.inflight: dict[str, int] = {}
        # Requests waiting, decoded (and as received): made when one must wait.
        self.inbox: deque[tuple[Any, str | bytes]] | None = None
        self.task: asyncio.Task[None] | None = None
        # Commands sent and not yet acknowledged (ids): a command seen twice (the opening read
        # and the feed) goes once; None while there are none.
        self.commands: set[str] | None = None
        self.refused = False  # a command did not fit the outbox: read the pending ones again
        self.token = uuid.uuid4().hex   # this connection, in announcements to other gateways
        self.announced: str | None = None  # the stream id of this session's announcement

    # -- WebSocketHandler ------------------------------------------------------------------

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws
        self.hub.attach(self)
        self._run(self._begin())

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        self.hub.stats["received"] += 1
        body = _decode(message)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "ack":
            self._acked(body)
            return
        inbox = self.inbox
        if inbox is None:
            inbox = self.inbox = deque()
        if len(inbox) >= MAX_PENDING:
            self._answer("request", "", DELTA, rejection(
                429, "rate_limited", _token(body),
                f"more than {MAX_PENDING} requests of this device are waiting"))
            return
        inbox.append((body, message))
        if self.task is None:
            self._run(self._work())

    def on_resume(self, ws: WebSocket) -> None:
        self._flush()

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        self.hub.detach(self)
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.inbox = None

    # -- from the change feed --------------------------------------------------------------

    def on_change(self, name: str, version: int, event: bytes) -> None:
        if version == 0:  # a command (commands.py)
            change = json.loads(event)
            if change.get("kind") == "command":
                self._command(commands.message(change["id"], change["command"],
                                               change["timestamp"]))
            return
        if name not in self.shadows:
            return
        held = self.latest.get(name)
        if held is not None and held[0] >= version:
            return
        change = json.loads(event)
        delta = change.get("delta")
        if delta is None:
            return  # desired did not change: no delta (as AWS IoT)
        self._offer(name, version, delta, change.get("timestamp"))

    def _offer(self, name: str, version: int, delta: Any, timestamp: Any) -> None:
        message = json.dumps({"type": "delta", "shadow": name, "version": version,
                              "state": delta, "timestamp": timestamp},
                             separators=(",", ":")).encode()
        self.latest[name] = (version, message)
        if name not in self.inflight:
            self._send_delta(name)

    def _send_delta(self, name: str) -> None:
        version, message = self.latest[name]
        if message is None:
            return
        self.inflight[name] = version
        self.hub.stats["delta"] += 1
        self._push(DELTA, message, coalesce=f"{self.device}\0{name}")

    def _acked(self, body: dict[str, Any]) -> None:
        name, version = body.get("shadow", ""), body.get("version")
        sent = self.inflight.get(name) if isinstance(name, str) else None
        if sent is None or not isinstance(version, int) or version < sent:
            return  # not in flight, or an older delta's (the newer one is still awaited)
        self.hub.stats["acked"] += 1
        del self.inflight[name]
        newest, _ = self.latest[name]
        if newest > version:
            self._send_delta(name)
        else:
            self.latest[name] = (newest, None)

    def _command(self, doc: dict[str, Any]) -> None:
        sent = self.commands
        if sent is None:
            sent = self.commands = set()
        if doc["id"] in sent:
            return
        sent.add(doc["id"])
        pushed = self._push(COMMAND, json.dumps({"type": "command", **doc},
                                                separators=(",", ":")).encode())
        if pushed == "refused":
            # Still pending in Redis: sent again after the device acknowledges another
            # command, or on its next connection. Never dropped.
            sent.discard(doc["id"])
            self.refused = True

    # -- requests --------------------------------------------------------------------------

    async def _begin(self) -> None:
        """The current delta of each shadow the session follows, once the feed runs."""
        await self.hub.feed.ready()
        try:
            self.announced = await self.hub.store.announce(self.device, self.token)
            for doc in await commands.pending(self.hub.store, self.device):
                self._command(doc)
            for name in self.shadows:
                await self._current(name)
        except StoreError as exc:
            log.warning("device %s: %s", self.device, exc)
            self._close(STORE_DOWN, "device store unavailable")
            return
        await self._work()  # what arrived meanwhile

    async def _current(self, name: str) -> None:
        """The shadow's delta as it is now, unless a newer one came meanwhile."""
        shadow, _ = await self.hub.store.read(self.device, name)
        if shadow is not None:
            delta = shadow.state().get("delta")
            held = self.latest.get(name)
            if delta and (held is None or held[0] < shadow.version):
                self._offer(name, shadow.version, delta, shadow.timestamp)

    async def _work(self) -> None:
        while self.inbox:
            body, message = self.inbox.popleft()
            if not isinstance(body, dict):
                self._answer("request", "", DELTA, rejection(
                    400, "invalid_message", None, "a message is a JSON object with a `type`"))
                continue
            await self._handle(body, message)
        # No await from the empty inbox to here: a message that arrives later starts a task.
        self.inbox = None
        if self.task is asyncio.current_task():
            self.task = None

    async def _handle(self, body: dict[str, Any], raw: str | bytes) -> None:
        op, name = body.get("type"), body.get("shadow", "")
        limiter = self.hub.limiter
        if limiter is not None and op != "command_ack" and not await requests.admitted(
                limiter, self.device):
            self._answer(str(op), "", DELTA, rejection(
                429, "rate_limited", _token(body),
                "the device's devices.session_rate_limit refused the message"))
        elif op == "command_ack":
            await self._command_done(body)
        elif op == "telemetry":
            payload = raw.encode() if isinstance(raw, str) else raw
            answer = await requests.telemetry(self.hub.store, self.device, payload)
            self._answer(op, "", ACK if answer.accepted else DELTA, answer)
        elif op not in ("get", "update"):
            self._answer("request", "", DELTA, rejection(
                400, "invalid_message", _token(body),
                "type must be update, get, telemetry, ack or command_ack"))
        elif not isinstance(name, str) or (name and not valid_name(name)):
            self._answer(op, "", DELTA, rejection(
                400, "invalid_message", _token(body), f"not a shadow name: {name!r}"))
        else:
            answer = await requests.shadow_request(self.hub.store, self.device, name, op,
                                                   body, self.writer)
            self._answer(op, name, DELTA, answer)

    async def _command_done(self, body: dict[str, Any]) -> None:
        if self.commands is not None:
            self.commands.discard(body.get("id"))
        refused = await requests.command_done(self.hub.store, self.device, body)
        if refused is None and self.refused:
            self.refused = False
            try:
                for doc in await commands.pending(self.hub.store, self.device):
                    self._command(doc)
            except StoreError as exc:
                refused = rejection(503, "device_store_unavailable", None, str(exc))
        if refused is not None:
            self._answer("command_ack", "", DELTA, refused)

    def _answer(self, op: str, name: str, klass: int, answer: Answer) -> None:
        accepted = answer.accepted
        self.hub.stats["accepted" if accepted else "rejected"] += 1
        kind = ("telemetry_accepted" if op == "telemetry" else "accepted") if accepted \
            else "rejected"
        doc = {"type": kind, "op": op, "shadow": name, **answer.doc}
        self._push(klass, json.dumps(doc, separators=(",", ":")).encode())

    # -- sending ---------------------------------------------------------------------------

    def _push(self, klass: int, payload: bytes, coalesce: str | None = None) -> Pushed | None:
        if self.hub.sessions.get(self.device) is not self:
            return None  # replaced or closed: the newer session sends its own
        pushed = self.hub.buffer.push(Item(self.device, klass, "", payload, coalesce))
        self._flush()
        return pushed

    def _flush(self) -> None:
        ws, buffer = self.ws, self.hub.buffer
        while not ws.paused and not ws.closed:
            item = buffer.pop_device(self.device)
            if item is None:
                return
            ws.send(item.payload.decode())

    def _close(self, code: int, reason: str) -> None:
        self.ws.close(code, reason)

    def _run(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.task = task

        def done(t: asyncio.Task[None]) -> None:
            if self.task is t:
                self.task = None
            if not t.cancelled() and t.exception() is not None:
                log.error("device %s: session failed", self.device, exc_info=t.exception())
                self._close(1011, "internal error")

        task.add_done_callback(done)

    def __repr__(self) -> str:
        return f"<DeviceSession {self.device} inflight={self.inflight}>"


def _stream_id(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _decode(message: str | bytes) -> Any:
    try:
        return json.loads(message)
    except ValueError:
        return None


def _token(body: Any) -> Any:
    return body.get("clientToken") if isinstance(body, dict) else None
