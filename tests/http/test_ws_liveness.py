"""Idle, ping and dead-peer decisions on injected times (no clock, no sockets)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from edgeward.http.ws_liveness import ALIVE, DEAD, PING, idle_due, side_verdict


def test_without_pings_a_side_is_always_alive() -> None:
    assert side_verdict(1e9, math.inf, 0.0, 0.0) == (ALIVE, math.inf)


def test_a_silent_side_is_pinged_then_dead_if_still_silent() -> None:
    assert side_verdict(110.0, 30.0, 100.0, 0.0) == (ALIVE, 130.0)
    assert side_verdict(130.0, 30.0, 100.0, 0.0) == (PING, 160.0)
    # pinged at 130, nothing read since: alive until 160, dead then
    assert side_verdict(150.0, 30.0, 100.0, 130.0) == (ALIVE, 160.0)
    assert side_verdict(160.0, 30.0, 100.0, 130.0) == (DEAD, math.inf)


def test_any_byte_after_the_ping_proves_the_side_alive() -> None:
    # pinged at 130, its pong (or anything) read at 131
    assert side_verdict(160.0, 30.0, 131.0, 130.0) == (ALIVE, 161.0)


def test_idle_counts_from_the_last_byte_either_way() -> None:
    assert idle_due(60.0, 10.0, 40.0) == 100.0
    assert idle_due(math.inf, 10.0, 40.0) == math.inf


@given(st.floats(0, 1e6), st.floats(0.001, 1e4), st.floats(0, 1e6), st.floats(0, 1e6))
def test_a_verdict_never_asks_to_look_again_in_the_past(now: float, interval: float,
                                                       read_at: float, pinged_at: float) -> None:
    verdict, when = side_verdict(now, interval, read_at, pinged_at)
    if verdict == ALIVE:
        assert when > now or when == math.inf
    if verdict == DEAD:
        assert pinged_at > read_at and now >= pinged_at + interval
