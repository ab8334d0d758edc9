"""GCRA, the generic cell rate algorithm (ITU-T I.371 virtual scheduling), as in redis-cell.

One float per key: the theoretical arrival time (TAT), the moment the key would be back to an
empty bucket if it kept sending at exactly `rate`. A request of cost c moves the TAT forward by
c * T (T = 1 / rate) and is admitted when the new TAT is no further than burst * T ahead of now.
Equivalent to a token bucket of `burst` tokens, with a single number of state and no refill
step, which is why it is the default and the one the Redis store runs.
"""

from __future__ import annotations

from edgeward.ratelimit.algorithm import EPSILON, bad_cost, check_params
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, KeyMap


class _Tat:
    """A key's theoretical arrival time, updated in place (no re-insertion per request)."""

    __slots__ = ("tat",)

    def __init__(self, tat: float) -> None:
        self.tat = tat


def _full_again(state: _Tat, now: float) -> bool:
    """A TAT not ahead of now: the key has its whole burst, as a key never seen."""
    return state.tat <= now


class GCRA:
    __slots__ = ("rate", "burst", "interval", "span", "keys")

    def __init__(self, rate: float, burst: int, max_keys: int = DEFAULT_MAX_KEYS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        check_params(rate, burst, max_keys)
        self.rate = rate
        self.burst = burst
        self.interval = 1.0 / rate          # T: seconds one unit of cost is worth
        self.span = burst / rate            # tau + T: how far ahead of now the TAT may run
        self.keys: KeyMap[_Tat] = KeyMap(max_keys, max_bytes, _full_again)

    @property
    def window(self) -> float:
        return self.span

    def decide(self, key: str, now: float, cost: int = 1) -> Decision:
        if cost < 1 or cost > self.burst:
            raise bad_cost(cost, self.burst)
        state = self.keys.get(key)
        tat = state.tat if state is not None else now
        if tat < now:
            tat = now
        new_tat = tat + cost * self.interval
        ahead = new_tat - now
        span = self.span
        if ahead <= span + EPSILON:
            if state is not None:
                state.tat = new_tat
            else:
                self.keys.put(key, _Tat(new_tat), now)
            return Decision(True, self.burst, int((span - ahead) * self.rate + EPSILON), ahead)
        remaining = int((span - (tat - now)) * self.rate + EPSILON)
        return Decision(False, self.burst, remaining, tat - now, ahead - span)

    def __repr__(self) -> str:
        return f"<GCRA rate={self.rate:g}/s burst={self.burst} keys={len(self.keys)}>"
