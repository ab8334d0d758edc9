"""Sliding window counter: two fixed windows, the previous one weighted by its overlap.

The window is burst / rate seconds long and holds `burst` units. The count "in the last
window" is estimated as previous * (1 - elapsed fraction of the current window) + current,
which assumes the previous window's requests were spread evenly (Cloudflare's and Kong's
sliding-window estimate; Sentinel's LeapArray is the same idea with more buckets). Two
counters per key, so it is cheap to keep in Redis with one hash per key.
"""

from __future__ import annotations

import math

from edgeward.ratelimit.algorithm import EPSILON, bad_cost, check_params
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, KeyMap


class SlidingWindow:
    __slots__ = ("rate", "burst", "length", "keys")

    def __init__(self, rate: float, burst: int, max_keys: int = DEFAULT_MAX_KEYS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        check_params(rate, burst, max_keys)
        self.rate = rate
        self.burst = burst
        self.length = burst / rate
        self.keys: KeyMap[list[float]] = KeyMap(max_keys, max_bytes, self._counts_gone)

    def _counts_gone(self, state: list[float], now: float) -> bool:
        """Both windows of the state are over: it counts nothing any more."""
        return math.floor(now / self.length) >= state[0] + 2

    @property
    def window(self) -> float:
        return self.length

    def decide(self, key: str, now: float, cost: int = 1) -> Decision:
        burst = self.burst
        if cost < 1 or cost > burst:
            raise bad_cost(cost, burst)
        length = self.length
        position = now / length
        index = math.floor(position)
        state = self.keys.get(key)          # [window index, current count, previous count]
        if state is None:
            state = [float(index), 0.0, 0.0]
            self.keys.put(key, state, now)
        elif index > state[0]:
            state[2] = state[1] if index == state[0] + 1 else 0.0
            state[1] = 0.0
            state[0] = float(index)
        elif index < state[0]:              # a caller's clock behind the last one: use its window
            position = state[0]
        fraction = position - state[0]
        current, previous = state[1], state[2]
        estimate = previous * (1.0 - fraction) + current
        to_window_end = (1.0 - fraction) * length
        if estimate + cost <= burst + EPSILON:
            current += cost
            state[1] = current
            remaining = int(burst - estimate - cost + EPSILON)
            return Decision(True, burst, remaining, to_window_end + length)
        room = burst - current - cost       # what the previous window's weight must fall to
        if room >= 0 and previous > 0:
            retry = ((1.0 - room / previous) - fraction) * length
        else:                               # wait for this window's count to start fading
            wait_in_next = 0.0 if current <= burst - cost else 1.0 - (burst - cost) / current
            retry = to_window_end + wait_in_next * length
        remaining = max(0, int(burst - estimate + EPSILON))
        return Decision(False, burst, remaining, to_window_end + length, max(retry, 0.0))

    def __repr__(self) -> str:
        return f"<SlidingWindow rate={self.rate:g}/s burst={self.burst} keys={len(self.keys)}>"
