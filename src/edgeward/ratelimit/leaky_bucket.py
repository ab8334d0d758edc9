"""Leaky bucket with nginx limit_req semantics: queue up to `burst`, drain at `rate`.

Per key: [water level, last drain time]. The water drains at `rate` units per second. A request
adds `cost` units; if that would overflow `burst` it is refused (nginx answers 503, we 429).
An admitted request that finds water already in the bucket waits for it to drain: `delay` is
that wait (level_before / rate), which is how nginx spaces out a burst so the upstream sees at
most `rate`. With `nodelay` the burst is forwarded at once (delay 0) and only its slots stay
taken until they drain. `delay_after` is nginx's `delay=N`: the first N queued units go
without delay, later ones wait for the water above N.
"""

from __future__ import annotations

from edgeward.ratelimit.algorithm import EPSILON, bad_cost, check_params
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, KeyMap


class LeakyBucket:
    __slots__ = ("rate", "burst", "nodelay", "delay_after", "keys")

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        nodelay: bool = False,
        delay_after: int = 0,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        check_params(rate, burst, max_keys)
        if delay_after < 0:
            raise ValueError(f"delay_after must be >= 0, got {delay_after!r}")
        self.rate = rate
        self.burst = burst
        self.nodelay = nodelay
        self.delay_after = delay_after
        self.keys: KeyMap[list[float]] = KeyMap(max_keys, max_bytes, self._empty_again)

    def _empty_again(self, state: list[float], now: float) -> bool:
        """Drained: the key is as good as never seen."""
        return state[0] - (now - state[1]) * self.rate <= 0.0

    @property
    def window(self) -> float:
        return self.burst / self.rate

    def decide(self, key: str, now: float, cost: int = 1) -> Decision:
        burst = self.burst
        if cost < 1 or cost > burst:
            raise bad_cost(cost, burst)
        rate = self.rate
        state = self.keys.get(key)
        if state is None:
            state = [0.0, now]
            self.keys.put(key, state, now)
        elif now > state[1]:
            level = state[0] - (now - state[1]) * rate
            state[0] = level if level > 0.0 else 0.0
            state[1] = now
        level = state[0]
        after = level + cost
        if after > burst + EPSILON:
            return Decision(
                False, burst, int(burst - level + EPSILON), level / rate, (after - burst) / rate
            )
        state[0] = after
        delay = 0.0
        if not self.nodelay and level > self.delay_after:
            delay = (level - self.delay_after) / rate
        return Decision(True, burst, int(burst - after + EPSILON), after / rate, 0.0, delay)

    def __repr__(self) -> str:
        mode = " nodelay" if self.nodelay else ""
        return (
            f"<LeakyBucket rate={self.rate:g}/s burst={self.burst}{mode} keys={len(self.keys)}>"
        )
