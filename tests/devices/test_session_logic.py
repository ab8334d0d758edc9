"""A device session's sending rules without sockets: a fake WebSocket and no Redis (the
paths under test never reach the store)."""

from __future__ import annotations

import json
from typing import Any

from edgeward.devices.config import DevicesConfig
from edgeward.devices.outbox import ACK, DEFAULT_PER_DEVICE
from edgeward.devices.requests import Answer
from edgeward.devices.sessions import REPLACED, DeviceSession, DeviceSessions
from edgeward.devices.store import ShadowStore


class FakeWebSocket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.paused = False
        self.closed = False
        self.close_code: int | None = None

    def send(self, message: str | bytes) -> None:
        assert not self.closed
        self.sent.append(json.loads(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed, self.close_code = True, code


def session(hub: DeviceSessions, device: str = "d") -> tuple[DeviceSession, FakeWebSocket]:
    s = DeviceSession(hub, device, ("", "cfg"), device)
    ws = FakeWebSocket()
    s.ws = ws  # type: ignore[assignment]
    hub.attach(s)
    return s, ws


def hub() -> DeviceSessions:
    return DeviceSessions(ShadowStore(None, DevicesConfig()))


def change(delta: object, version: int) -> bytes:
    return json.dumps({"kind": "update", "version": version, "delta": delta,
                       "timestamp": 1.0}).encode()


def test_one_delta_in_flight_per_shadow_and_the_newest_after_the_ack() -> None:
    h = hub()
    s, ws = session(h)
    s.on_change("", 1, change({"a": 1}, 1))
    s.on_change("", 2, change({"a": 2}, 2))
    s.on_change("", 3, change({"a": 3}, 3))
    s.on_change("cfg", 1, change({"r": 1}, 1))       # another shadow: its own flight
    s.on_change("", 4, change(None, 4))              # reported only: no delta
    assert [(m["shadow"], m["version"]) for m in ws.sent] == [("", 1), ("cfg", 1)]
    s.on_message(ws, json.dumps({"type": "ack", "shadow": "", "version": 0}))  # too old
    assert len(ws.sent) == 2
    s.on_message(ws, json.dumps({"type": "ack", "shadow": "", "version": 1}))
    assert ws.sent[-1]["version"] == 3 and ws.sent[-1]["state"] == {"a": 3}
    s.on_message(ws, json.dumps({"type": "ack", "shadow": "", "version": 3}))
    s.on_change("", 3, change({"a": 3}, 3))          # seen again (read and feed): dropped
    assert len(ws.sent) == 3 and s.inflight == {"cfg": 1}
    assert h.stats["acked"] == 2


def test_a_paused_connection_gets_deltas_before_telemetry_acknowledgements() -> None:
    h = hub()
    s, ws = session(h)
    ws.paused = True
    s._answer("telemetry", "", ACK, Answer(True, {"id": "m1", "stored": True, "entry": "1-0"}))
    s.on_change("", 1, change({"a": 1}, 1))
    assert ws.sent == []
    ws.paused = False
    s.on_resume(ws)  # type: ignore[arg-type]
    assert [m["type"] for m in ws.sent] == ["delta", "telemetry_accepted"]


def test_a_device_that_does_not_read_is_bounded_and_loses_acks_first() -> None:
    h = hub()
    s, ws = session(h)
    ws.paused = True
    for i in range(DEFAULT_PER_DEVICE + 10):
        s._answer("telemetry", "", ACK, Answer(True, {"id": f"m{i}"}))
    s.on_change("", 1, change({"a": 1}, 1))
    assert len(h.buffer) == DEFAULT_PER_DEVICE
    assert h.buffer.stats.dropped[ACK] == 11          # 10 over the bound, 1 for the delta
    ws.paused = False
    s.on_resume(ws)  # type: ignore[arg-type]
    assert ws.sent[0]["type"] == "delta" and ws.sent[1]["id"] == "m11"


def test_a_newer_connection_takes_over_and_the_old_one_sends_nothing() -> None:
    h = hub()
    old, old_ws = session(h)
    old_ws.paused = True
    old.on_change("", 1, change({"a": 1}, 1))
    new, new_ws = session(h)
    assert old_ws.close_code == REPLACED and h.stats["replaced"] == 1
    assert len(h.buffer) == 0                         # what waited for the old one is gone
    old.on_change("", 2, change({"a": 2}, 2))         # a late feed entry to the old one
    assert old_ws.sent == []
    new.on_change("", 2, change({"a": 2}, 2))
    assert new_ws.sent[0]["version"] == 2
    old.on_close(old_ws, REPLACED, "")  # type: ignore[arg-type]
    assert h.sessions["d"] is new and h.feed.subscribers["d"] == [new]
    new.on_close(new_ws, 1000, "")  # type: ignore[arg-type]
    assert not h.sessions and not h.feed.subscribers


def test_an_announcement_from_elsewhere_replaces_only_an_older_session() -> None:
    h = hub()
    s, ws = session(h)
    assert h.feed.on_session is not None
    announce = h.feed.on_session
    announce("d", "another", "7-0")      # ours is still being announced: newer
    s.announced = "8-3"
    announce("d", s.token, "9-0")        # our own announcement, read back
    announce("d", "another", "8-2")      # an older connection's
    announce("x", "another", "10-0")     # another device's
    assert not ws.closed
    announce("d", "another", "8-4")      # a newer connection elsewhere
    assert ws.close_code == REPLACED and "d" not in h.sessions
    assert h.stats["replaced"] == 1
