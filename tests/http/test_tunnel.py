"""The tunnel on fake transports and a fake clock: relay, backpressure, half-close, resets,
the idle timeout and the 1001 close frames at frame boundaries."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edgeward.http.tunnel import (
    ENDED_CLOSED,
    ENDED_CUT,
    ENDED_DEAD,
    ENDED_IDLE,
    ENDED_RELOAD,
    ENDED_RESET,
    ENDED_SHUTDOWN,
    GOING_AWAY_GRACE,
    Tunnel,
    TunnelSettings,
    TunnelStats,
)
from edgeward.http.ws_frames import frame_size, parse_close
from support.fakes import FakeLoop, FakeTransport


class TunnelTransport(FakeTransport):
    """A fake transport a protocol can be swapped on, with half-close."""

    def __init__(self, loop: FakeLoop) -> None:
        super().__init__(loop, None, ("127.0.0.1", 1))
        self.eof_written = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.calls.append("write_eof")
        self.eof_written = True


def frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        size = frame_size(data, 0)
        assert size, f"not whole frames: {data[:20]!r}"
        out.append(data[:size])
        data = data[size:]
    return out


def ws_frame(payload: bytes, masked: bool) -> bytes:
    assert len(payload) < 126
    if not masked:
        return bytes([0x82, len(payload)]) + payload
    return bytes([0x82, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # zero key


class Rig:
    def __init__(self, idle: float = 60.0, early: tuple[bytes, bytes] = (b"", b"")) -> None:
        self.loop = FakeLoop()
        self.client = TunnelTransport(self.loop)
        self.upstream = TunnelTransport(self.loop)
        self.stats = TunnelStats()
        self.stats.open = 1  # the handshake's reservation, which the tunnel takes over
        self.registry: set[Tunnel] = set()
        self.tunnel = Tunnel(self.loop, self.registry, self.client, self.upstream,  # type: ignore[arg-type]
                             TunnelSettings(idle_timeout=idle), self.stats)
        with self.loop.running():
            self.tunnel.start(*early)
        self.loop.run()

    def run(self) -> None:
        self.loop.run()


def test_bytes_are_relayed_both_ways_and_counted() -> None:
    r = Rig(early=(b"c0", b"u0"))
    r.client.feed(b"c1")
    r.upstream.feed(b"u1")
    r.run()
    assert r.upstream.data == b"c0c1"
    assert r.client.data == b"u0u1"
    assert (r.stats.bytes_up, r.stats.bytes_down) == (4, 4)
    assert r.tunnel in r.registry


def test_a_full_write_buffer_pauses_the_other_side() -> None:
    r = Rig()
    r.client.fill()  # the client stopped reading: the upstream must not be read meanwhile
    assert not r.upstream.reading
    assert r.stats.pauses == 1
    r.upstream.feed(b"held in the kernel")
    r.run()
    assert r.client.data == b""
    r.client.drain()
    r.run()
    assert r.upstream.reading
    assert r.client.data == b"held in the kernel"
    r.upstream.fill()
    assert not r.client.reading


def test_half_close_is_passed_on_and_both_eofs_close_both() -> None:
    r = Rig()
    r.client.feed(b"last words")
    r.client.feed_eof()
    r.run()
    assert r.upstream.eof_written and r.upstream.data == b"last words"
    assert not r.upstream.closed  # the upstream may still answer
    r.upstream.feed(b"answer")
    r.upstream.feed_eof()
    r.run()
    assert r.client.data == b"answer"
    assert r.client.closed and r.upstream.closed
    assert not r.registry and r.stats.open == 0
    assert r.stats.ended == {ENDED_CLOSED: 1}


def test_a_reset_on_one_side_resets_the_other() -> None:
    r = Rig()
    r.upstream.reset()
    r.run()
    assert r.client.aborted
    assert r.stats.ended == {ENDED_RESET: 1} and r.stats.open == 0


def test_a_plain_close_closes_the_other_side_after_what_was_relayed() -> None:
    r = Rig()
    r.upstream.feed(b"bye")
    r.upstream.close()  # the upstream's connection ended without a half-close
    r.run()
    assert r.client.data == b"bye" and r.client.closed and not r.client.aborted
    assert not r.registry


def test_going_away_at_boundaries_sends_1001_both_ways_masked_upstream() -> None:
    r = Rig()
    r.client.feed(ws_frame(b"hello", masked=True))
    r.upstream.feed(ws_frame(b"world", masked=False))
    r.run()
    r.tunnel.go_away(ENDED_SHUTDOWN)
    r.run()
    to_upstream = frames(r.upstream.data)
    to_client = frames(r.client.data)
    assert parse_close(to_upstream[-1]) == (1001, "gateway shutting down")
    assert to_upstream[-1][1] & 0x80  # masked, as from a client
    assert parse_close(to_client[-1]) == (1001, "gateway shutting down")
    assert not to_client[-1][1] & 0x80
    assert r.client.closed and r.upstream.closed
    assert r.stats.ended == {ENDED_SHUTDOWN: 1}


def test_a_close_frame_waits_for_the_frame_in_progress_to_end() -> None:
    r = Rig()
    message = ws_frame(b"0123456789", masked=False)
    r.upstream.feed(message[:5])  # mid-frame toward the client
    r.run()
    r.tunnel.go_away(ENDED_SHUTDOWN)
    r.run()
    assert r.client.data == message[:5]  # nothing injected inside the frame
    r.upstream.feed(message[5:] + ws_frame(b"after", masked=False))
    r.run()
    sent = frames(r.client.data)
    assert sent[0] == message
    assert parse_close(sent[1]) == (1001, "gateway shutting down")
    assert len(sent) == 2  # what the upstream sent after the boundary is dropped
    assert r.client.closed


def test_a_peer_stuck_mid_frame_is_cut_after_the_grace() -> None:
    r = Rig()
    r.upstream.feed(ws_frame(b"0123456789", masked=False)[:5])
    r.run()
    r.tunnel.go_away(ENDED_SHUTDOWN)
    r.loop.advance(GOING_AWAY_GRACE + 0.1)
    assert r.client.aborted and r.upstream.aborted
    assert r.stats.ended == {ENDED_CUT: 1}


def test_idle_timeout_counts_from_the_last_byte_either_way() -> None:
    r = Rig(idle=60.0)
    r.loop.advance(50)
    r.client.feed(ws_frame(b"ping", masked=True))
    r.loop.advance(50)  # 100 s since the start, 50 s since the last byte
    assert not r.client.closed
    r.loop.advance(10.5)
    closes = [parse_close(f) for f in frames(r.client.data)]
    assert closes == [(1001, "idle timeout")]
    assert r.client.closed and r.upstream.closed
    assert r.stats.ended == {ENDED_IDLE: 1}
    assert r.loop.pending_timers() == []


@pytest.mark.parametrize("idle", [float("inf")])
def test_no_idle_timeout_arms_no_timer(idle: float) -> None:
    r = Rig(idle=idle)
    assert r.loop.pending_timers() == []


def ping_rig(interval: float = 30.0) -> Rig:
    r = Rig.__new__(Rig)
    r.loop = FakeLoop()
    r.client = TunnelTransport(r.loop)
    r.upstream = TunnelTransport(r.loop)
    r.stats = TunnelStats()
    r.stats.open = 1
    r.registry = set()
    r.tunnel = Tunnel(r.loop, r.registry, r.client, r.upstream,  # type: ignore[arg-type]
                      TunnelSettings(idle_timeout=math.inf, ping_interval=interval), r.stats)
    with r.loop.running():
        r.tunnel.start(b"", b"")
    r.loop.run()
    return r


def pings(data: bytes) -> list[bytes]:
    return [f for f in frames(data) if f[0] == 0x89]


def test_silent_sides_are_pinged_masked_toward_the_upstream() -> None:
    r = ping_rig()
    r.loop.advance(30.1)
    [to_client] = pings(r.client.data)
    [to_upstream] = pings(r.upstream.data)
    assert to_client == b"\x89\x08edgeward"  # unmasked toward the client
    assert to_upstream[1] == 0x80 | 8  # masked toward the upstream
    key = to_upstream[2:6]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(to_upstream[6:])) == b"edgeward"
    assert r.stats.pings == 2


def test_peers_that_answer_keep_the_tunnel() -> None:
    r = ping_rig()
    for _ in range(5):
        r.loop.advance(30.1)
        r.client.feed(b"\x8a\x88\x00\x00\x00\x00edgeward")  # its pong
        r.upstream.feed(b"\x8a\x08edgeward")
    assert not r.client.closed and not r.upstream.closed
    # each pong is relayed to the other peer, as an unsolicited pong
    assert b"\x8a\x08edgeward" in r.client.data


def test_a_side_that_does_not_answer_is_dead_and_the_other_gets_1001() -> None:
    r = ping_rig()
    r.loop.advance(30.1)
    r.client.feed(b"\x8a\x88\x00\x00\x00\x00edgeward")  # the client answers, the upstream not
    r.loop.advance(30.1)
    closes = [parse_close(f) for f in frames(r.client.data) if f[0] == 0x88]
    assert closes == [(1001, "peer did not answer a ping")]
    r.loop.advance(GOING_AWAY_GRACE + 0.1)
    assert r.client.closed and r.upstream.closed
    assert r.stats.ended in ({ENDED_DEAD: 1}, {ENDED_CUT: 1})


def test_a_ping_waits_for_the_frame_in_progress() -> None:
    r = ping_rig()
    message = ws_frame(b"0123456789", masked=True)
    r.loop.advance(29.0)
    r.client.feed(message[:6])  # the client is mid-frame toward the upstream
    r.loop.advance(30.1)  # the upstream has been silent: its ping must wait for the boundary
    assert r.upstream.data == message[:6]
    r.client.feed(message[6:] + ws_frame(b"next", masked=True))
    r.run()
    sent = frames(r.upstream.data)
    assert sent[0] == message and sent[1][0] == 0x89 and sent[2] == ws_frame(b"next", True)


def test_a_retired_tunnel_goes_away_after_the_delay_unless_it_ends_first() -> None:
    r = Rig()
    r.tunnel.retire(10.0)
    r.loop.advance(9.0)
    assert not r.client.closed
    r.loop.advance(1.5)
    assert [parse_close(f) for f in frames(r.client.data)] == [
        (1001, "route withdrawn by a reload")]
    assert r.stats.ended == {ENDED_RELOAD: 1}
    ended = Rig()
    ended.tunnel.retire(10.0)
    ended.upstream.reset()
    ended.run()
    assert ended.loop.pending_timers() == []  # the retirement was called off
