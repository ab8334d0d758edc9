"""Priority buffering of what the gateway sends to devices, sans-I/O, with its async shell.

Three classes, sent strictly in this order (FIFO within a class, so a device's messages of one
class keep their order): COMMAND (commands to a device), DELTA (shadow deltas and the replies
to shadow requests), ACK (telemetry acknowledgements).

Bounds: at most `per_device` queued messages per device and `total` in all. The policy when a
message would pass a bound (docs/devices.md, "Priority buffering"):
- a DELTA with a coalescing key (one per shadow) replaces the queued one with the same key in
  place: a newer delta carries the whole difference, so nothing is lost and nothing grows;
- otherwise the oldest queued ACK (of the device when the device is full, else anywhere) is
  dropped to make room: an acknowledgement is the cheapest message to lose (the device resends
  its telemetry, which the idempotency key stores once);
- with no ACK to drop: a new ACK or DELTA is dropped (counted); a COMMAND is refused: `push`
  says so and the caller must tell the command's sender. A command is never dropped silently.
Every outcome is counted in `BufferStats` (exported as metrics).

Two ways to take messages out: `pop()` the next one of any device (one connection carries every
device: the MQTT bridge), or, with `lanes=True`, `pop_device(device)` the next one of that
device (one connection per device: WebSocket sessions, where a device whose socket is full must
not hold up the others). The bounds and the policy are the same.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

COMMAND: Final = 0
DELTA: Final = 1
ACK: Final = 2
CLASSES: Final = (COMMAND, DELTA, ACK)
CLASS_NAMES: Final = ("command", "delta", "ack")

# Per device: a burst of a few dozen messages (MQTT brokers' max_inflight_messages is 20 by
# default in mosquitto, 32 in EMQX); in all: ~10k devices with one message each queued.
DEFAULT_PER_DEVICE: Final = 64
DEFAULT_TOTAL: Final = 10_000

Pushed = Literal["queued", "coalesced", "dropped", "refused"]


@dataclass(slots=True, eq=False)
class Item:
    device: str
    klass: int
    topic: str
    payload: bytes
    coalesce: str | None = None
    after: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    alive: bool = True
    seq: int = 0   # push order (set by the buffer): the oldest ACK anywhere in lanes mode


@dataclass(slots=True)
class BufferStats:
    queued: list[int] = field(default_factory=lambda: [0, 0, 0])
    sent: list[int] = field(default_factory=lambda: [0, 0, 0])
    dropped: list[int] = field(default_factory=lambda: [0, 0, 0])
    coalesced: int = 0
    refused: int = 0
    evicted: int = 0   # queued ACKs dropped to make room (also counted in dropped[ACK])


class PriorityBuffer:
    """The sans-I/O buffer: `push` decides, `pop` takes the next message to send."""

    def __init__(self, per_device: int = DEFAULT_PER_DEVICE, total: int = DEFAULT_TOTAL,
                 *, lanes: bool = False) -> None:
        if per_device < 1 or total < 1:
            raise ValueError("bounds must be at least 1")
        self.per_device = per_device
        self.total = total
        self.size = 0
        self.stats = BufferStats()
        self.lanes = lanes
        self._pushed = 0
        # Ordered mode: one queue per class for every device; lanes mode: per device.
        self._queues: tuple[deque[Item], ...] = (deque(), deque(), deque())
        self._lanes: dict[str, tuple[deque[Item], ...]] = {}
        self._counts: dict[str, int] = {}
        self._acks: dict[str, deque[Item]] = {}
        self._keyed: dict[str, Item] = {}

    def push(self, item: Item) -> Pushed:
        if item.coalesce is not None:
            held = self._keyed.get(item.coalesce)
            if held is not None and held.alive:
                held.payload = item.payload
                held.after.extend(item.after)
                self.stats.coalesced += 1
                return "coalesced"
        device_full = self._counts.get(item.device, 0) >= self.per_device
        if device_full or self.size >= self.total:
            victim = self._oldest_ack(item.device if device_full else None)
            if victim is not None:
                self._remove(victim)
                self.stats.dropped[ACK] += 1
                self.stats.evicted += 1
            elif item.klass == COMMAND:
                self.stats.refused += 1
                return "refused"
            else:
                self.stats.dropped[item.klass] += 1
                return "dropped"
        self._pushed += 1
        item.seq = self._pushed
        if self.lanes:
            lane = self._lanes.get(item.device)
            if lane is None:
                lane = self._lanes[item.device] = (deque(), deque(), deque())
            lane[item.klass].append(item)
        else:
            self._queues[item.klass].append(item)
        self._counts[item.device] = self._counts.get(item.device, 0) + 1
        self.size += 1
        self.stats.queued[item.klass] += 1
        if item.klass == ACK:
            self._acks.setdefault(item.device, deque()).append(item)
        if item.coalesce is not None:
            self._keyed[item.coalesce] = item
        return "queued"

    def pop(self) -> Item | None:
        """The next message of any device (ordered mode)."""
        return self._first(self._queues)

    def pop_device(self, device: str) -> Item | None:
        """The next message of `device` (lanes mode)."""
        lane = self._lanes.get(device)
        return self._first(lane) if lane is not None else None

    def _first(self, queues: tuple[deque[Item], ...]) -> Item | None:
        for klass in CLASSES:
            queue = queues[klass]
            while queue:
                item = queue.popleft()
                if item.alive:
                    self._remove(item)
                    self.stats.sent[klass] += 1
                    return item
        return None

    def forget(self, device: str) -> None:
        """Drop what waits for `device` (lanes mode: its connection closed), counted as
        dropped."""
        lane = self._lanes.get(device)
        if lane is None:
            return
        for queue in lane:
            for item in queue:
                if item.alive:
                    self.stats.dropped[item.klass] += 1
                    self._remove(item)

    def __len__(self) -> int:
        return self.size

    def _oldest_ack(self, device: str | None) -> Item | None:
        if device is not None:
            acks = self._acks.get(device)
            return next((i for i in acks if i.alive), None) if acks else None
        if self.lanes:
            # Each device's ACKs are in push order: the oldest is the least first one.
            firsts = [next((i for i in acks if i.alive), None) for acks in self._acks.values()]
            return min((i for i in firsts if i is not None), key=_seq, default=None)
        return next((i for i in self._queues[ACK] if i.alive), None)

    def _remove(self, item: Item) -> None:
        item.alive = False
        self.size -= 1
        left = self._counts[item.device] - 1
        if left:
            self._counts[item.device] = left
        else:
            del self._counts[item.device]
            self._lanes.pop(item.device, None)  # what is left there is dead
        if item.coalesce is not None and self._keyed.get(item.coalesce) is item:
            del self._keyed[item.coalesce]
        if item.klass == ACK:
            acks = self._acks[item.device]
            while acks and not acks[0].alive:
                acks.popleft()
            if not acks:
                del self._acks[item.device]


def _seq(item: Item) -> int:
    return item.seq


class Outbox:
    """The async shell: `put` never waits; a sender task awaits `next()`."""

    def __init__(self, per_device: int = DEFAULT_PER_DEVICE, total: int = DEFAULT_TOTAL) -> None:
        self.buffer = PriorityBuffer(per_device, total)
        self._ready = asyncio.Event()

    def put(self, device: str, klass: int, topic: str, payload: bytes, *,
            coalesce: str | None = None,
            after: list[Callable[[], Awaitable[object]]] | None = None) -> Pushed:
        pushed = self.buffer.push(Item(device, klass, topic, payload, coalesce, after or []))
        if pushed in ("queued", "coalesced"):
            self._ready.set()
        return pushed

    async def next(self) -> Item:
        while True:
            item = self.buffer.pop()
            if item is not None:
                return item
            self._ready.clear()
            await self._ready.wait()
