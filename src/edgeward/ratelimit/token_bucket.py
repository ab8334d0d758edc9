"""Token bucket, as in Envoy's local_ratelimit: `burst` tokens, refilled continuously at `rate`.

Per key: [tokens, last refill time]. Refill is computed lazily from the elapsed time, so there
is no timer. Same admissions as GCRA in exact arithmetic; kept for users who think in tokens
and for parity with Envoy configurations.
"""

from __future__ import annotations

from edgeward.ratelimit.algorithm import EPSILON, bad_cost, check_params
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, KeyMap


class TokenBucket:
    __slots__ = ("rate", "burst", "keys")

    def __init__(self, rate: float, burst: int, max_keys: int = DEFAULT_MAX_KEYS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        check_params(rate, burst, max_keys)
        self.rate = rate
        self.burst = burst
        self.keys: KeyMap[list[float]] = KeyMap(max_keys, max_bytes, self._full_again)

    def _full_again(self, state: list[float], now: float) -> bool:
        """Refilled to the whole burst: the key is as good as never seen."""
        return state[0] + (now - state[1]) * self.rate >= self.burst

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
            state = [float(burst), now]
            self.keys.put(key, state, now)
        elif now > state[1]:
            tokens = state[0] + (now - state[1]) * rate
            state[0] = tokens if tokens < burst else float(burst)
            state[1] = now
        tokens = state[0]
        if tokens + EPSILON >= cost:
            tokens -= cost
            state[0] = tokens
            return Decision(True, burst, int(tokens + EPSILON), (burst - tokens) / rate)
        return Decision(
            False, burst, int(tokens + EPSILON), (burst - tokens) / rate, (cost - tokens) / rate
        )

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}/s burst={self.burst} keys={len(self.keys)}>"
