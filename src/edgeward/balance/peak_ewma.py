"""peak_ewma: Finagle's peak-EWMA latency-aware power of two choices.

Per endpoint a `cost` (seconds) tracks latency: a sample above the cost replaces it at once
(peaks count immediately); otherwise cost moves toward the sample with weight
1 - exp(-dt / decay), dt being the time since the last sample. Between samples the cost also
decays toward zero with the same time constant, so a host that was slow long ago is probed
again. Pick: two random live endpoints, lower `cost * (active + 1)` wins.

An endpoint with no latency history yet has load 0 when idle (it is tried at once, as in
Finagle) but `UNKNOWN_COST_PENALTY + active` while it has requests in flight, so a burst does
not pile onto a host nobody has timed yet. Weights are ignored (as in Finagle and Envoy's
peak_ewma). Cost history is kept across `set_endpoints` for endpoints whose key stays.
"""

from __future__ import annotations

import math
import random
from math import exp

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.options import BalancerOptions

# Finagle uses Double.MaxValue / 2; a finite 1e12 s keeps `penalty + active` distinguishable
# so the untimed host with fewer in flight still wins among untimed hosts.
UNKNOWN_COST_PENALTY = 1e12


class EwmaState:
    """Latency history of one endpoint: cost in seconds at time `stamp`."""

    __slots__ = ("cost", "stamp")

    def __init__(self) -> None:
        self.cost = 0.0
        self.stamp = 0.0

    def observe(self, latency: float, now: float, decay: float) -> None:
        latency = max(latency, 0.0)
        elapsed = now - self.stamp
        if latency > self.cost:
            self.cost = latency
        else:
            w = math.exp(-elapsed / decay) if elapsed > 0.0 else 1.0
            self.cost = self.cost * w + latency * (1.0 - w)
        if now > self.stamp:
            self.stamp = now

    def cost_at(self, now: float, decay: float) -> float:
        elapsed = now - self.stamp
        return self.cost * math.exp(-elapsed / decay) if elapsed > 0.0 else self.cost

    def __repr__(self) -> str:
        return f"<EwmaState cost={self.cost:.6f} at={self.stamp:.3f}>"


class PeakEwmaBalancer(Balancer):
    __slots__ = ("_decay", "_states", "_live_states")

    def __init__(self, options: BalancerOptions, rng: random.Random) -> None:
        super().__init__(options, rng)
        self._decay = options.ewma_decay
        self._states: dict[str, EwmaState] = {}
        self._live_states: list[EwmaState] = []

    def state(self, endpoint: Endpoint) -> EwmaState | None:
        """Latency history of a member (for the admin API and tests)."""
        return self._states.get(endpoint.key)

    def _membership_changed(self) -> None:
        old = self._states
        self._states = {e.key: old.get(e.key) or EwmaState() for e in self._members}

    def _rebuild(self) -> None:
        states = self._states
        self._live_states = [states[e.key] for e in self._live]

    def record(self, endpoint: Endpoint, latency: float, now: float) -> None:
        state = self._states.get(endpoint.key)
        if state is not None:
            state.observe(latency, now, self._decay)

    def load(self, endpoint: Endpoint, now: float) -> float:
        """The figure P2C compares: decayed cost * (active + 1), or the untimed penalty."""
        state = self._states.get(endpoint.key)
        return self._load(state or EwmaState(), endpoint.active, now)

    def _load(self, state: EwmaState, active: int, now: float) -> float:
        cost = state.cost
        if cost == 0.0:
            return UNKNOWN_COST_PENALTY + active if active else 0.0
        elapsed = now - state.stamp
        if elapsed > 0.0:
            cost *= math.exp(-elapsed / self._decay)
        return cost * (active + 1)

    def pick(self, hash_key: int | None, now: float) -> Endpoint | None:
        live = self._live
        n = len(live)
        if n < 2:
            return live[0] if n else None
        # One draw for both picks: the fraction left after choosing i is uniform again.
        x = self._rng.random() * n
        i = int(x)
        j = int((x - i) * (n - 1))
        if j >= i:
            j += 1
        first, second = live[i], live[j]
        a, b = self._live_states[i], self._live_states[j]
        # _load inlined for both candidates: this is the per-request path.
        decay = self._decay
        if a.cost == 0.0:
            load_a = UNKNOWN_COST_PENALTY + first.active if first.active else 0.0
        else:
            load_a = a.cost * (first.active + 1)
            if now > a.stamp:
                load_a *= exp(-(now - a.stamp) / decay)
        if b.cost == 0.0:
            load_b = UNKNOWN_COST_PENALTY + second.active if second.active else 0.0
        else:
            load_b = b.cost * (second.active + 1)
            if now > b.stamp:
                load_b *= exp(-(now - b.stamp) / decay)
        return second if load_b < load_a else first
