from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.devices.outbox import ACK, COMMAND, DELTA, Item, Outbox, PriorityBuffer

devices = st.sampled_from(["d1", "d2", "d3"])
ops = st.lists(st.one_of(
    st.tuples(st.just("push"), devices, st.sampled_from([COMMAND, DELTA, ACK]),
              st.sampled_from([None, "s1", "s2"])),
    st.tuples(st.just("pop"), devices, st.just(0), st.none()),
), max_size=60)


def _waiting(buf: PriorityBuffer, device: str) -> set[int]:
    """The classes with a live message: any device's (ordered), `device`'s (lanes)."""
    queues = buf._lanes.get(device, ((), (), ())) if buf.lanes else buf._queues
    return {k for k, q in enumerate(queues) if any(i.alive for i in q)}


@settings(max_examples=100, deadline=None)
@given(ops, st.integers(1, 4), st.integers(1, 8), st.booleans())
def test_bounds_priority_order_and_no_silent_command_loss(
        script: list[tuple[str, str, int, str | None]], per_device: int, total: int,
        lanes: bool) -> None:
    """In both modes: the bounds hold, classes go out in strict priority (per device in
    lanes mode), a coalesced delta is the newest, and every queued command comes out in
    order."""
    buf = PriorityBuffer(per_device, total, lanes=lanes)
    take = buf.pop_device if lanes else (lambda _device: buf.pop())
    commands_in: list[tuple[str, bytes]] = []
    commands_out: list[tuple[str, bytes]] = []
    latest: dict[str, bytes] = {}
    for n, (op, device, klass, key) in enumerate(script):
        if op == "push":
            payload = str(n).encode()
            coalesce = f"{device}/{key}" if klass == DELTA and key else None
            pushed = buf.push(Item(device, klass, "t", payload, coalesce))
            if klass == COMMAND and pushed == "queued":
                commands_in.append((device, payload))
            if coalesce is not None and pushed in ("queued", "coalesced"):
                latest[coalesce] = payload
        else:
            waiting = _waiting(buf, device)
            item = take(device)
            if item is None:
                assert not waiting
                continue
            assert item.klass == min(waiting)          # strict priority
            assert not lanes or item.device == device
            if item.klass == COMMAND:
                commands_out.append((item.device, item.payload))
            if item.coalesce is not None:               # a coalesced delta is the newest
                assert item.payload == latest[item.coalesce]
        assert len(buf) <= total
        assert all(c <= per_device for c in buf._counts.values())
    for device in ("d1", "d2", "d3"):
        while (item := take(device)) is not None:
            if item.klass == COMMAND:
                commands_out.append((item.device, item.payload))
    # Every queued command comes out, in order (per device in lanes mode); a command that did
    # not fit was refused.
    if lanes:
        for d in ("d1", "d2", "d3"):
            assert [c for c in commands_out if c[0] == d] == [c for c in commands_in if c[0] == d]
    else:
        assert commands_out == commands_in
    assert len(buf) == 0 and not buf._lanes
    s = buf.stats
    assert sum(s.queued) == sum(s.sent) + s.evicted  # nothing else leaves the buffer


def test_a_full_device_drops_its_oldest_ack_before_refusing_a_command() -> None:
    buf = PriorityBuffer(per_device=2, total=10)
    assert buf.push(Item("d", ACK, "ack1", b"1")) == "queued"
    assert buf.push(Item("d", ACK, "ack2", b"2")) == "queued"
    assert buf.push(Item("d", COMMAND, "c1", b"c")) == "queued"   # ack1 made room
    assert buf.push(Item("d", COMMAND, "c2", b"c")) == "queued"   # ack2 made room
    assert buf.push(Item("d", COMMAND, "c3", b"c")) == "refused"  # said, not dropped
    assert buf.push(Item("d", ACK, "ack3", b"3")) == "dropped"
    assert [buf.pop().topic for _ in range(2)] == ["c1", "c2"]  # type: ignore[union-attr]
    assert buf.stats.dropped[ACK] == 3 and buf.stats.refused == 1


def test_deltas_for_one_shadow_coalesce_in_place() -> None:
    buf = PriorityBuffer()
    buf.push(Item("d", DELTA, "a/delta", b"v1", "a"))
    buf.push(Item("d", ACK, "ack", b""))
    assert buf.push(Item("d", DELTA, "a/delta", b"v2", "a")) == "coalesced"
    first = buf.pop()
    assert first is not None and first.payload == b"v2" and len(buf) == 1
    assert buf.push(Item("d", DELTA, "a/delta", b"v3", "a")) == "queued"  # the old one left


def test_lanes_evict_the_oldest_ack_of_any_device_when_the_total_is_full() -> None:
    buf = PriorityBuffer(per_device=4, total=3, lanes=True)
    buf.push(Item("d2", ACK, "old", b""))
    buf.push(Item("d1", ACK, "newer", b""))
    buf.push(Item("d1", DELTA, "x", b""))
    assert buf.push(Item("d3", COMMAND, "c", b"")) == "queued"   # d2's older ack made room
    assert buf.pop_device("d2") is None
    assert [i.topic for i in iter(lambda: buf.pop_device("d1"), None)] == ["x", "newer"]
    assert buf.stats.evicted == 1


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PriorityBuffer(0, 1)


async def test_the_shell_wakes_a_waiting_sender() -> None:
    box = Outbox()
    waiter = asyncio.ensure_future(box.next())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put("d", DELTA, "t", b"x")
    item = await asyncio.wait_for(waiter, 1)
    assert item.payload == b"x"
