"""What every per-process rate-limit algorithm offers, and the checks they share.

Conventions common to all four algorithms (GCRA, token bucket, leaky bucket, sliding window):

  rate   cost units per second refilled (float, > 0)
  burst  the most cost units a key may spend at once (int, >= 1); over any interval of t
         seconds a key is admitted at most `burst + rate * t` units
  cost   units one request spends (1 <= cost <= burst); a request costing more than the burst
         could never pass, so it is a programming error and raises ValueError

Note for nginx users: nginx `burst=N` admits N + 1 requests at once (the one being served plus N
queued); the same behaviour here is `burst: N + 1`.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import KeyMap

# Comparisons of accumulated float time allow this much slack (one nanosecond), so a request
# arriving exactly on its theoretical time is not refused because of rounding.
EPSILON: Final = 1e-9


class Algorithm(Protocol):
    rate: float
    burst: int
    keys: KeyMap[Any]

    @property
    def window(self) -> float: ...  # seconds over which `burst` refills: burst / rate

    def decide(self, key: str, now: float, cost: int = 1) -> Decision: ...


def check_params(rate: float, burst: int, max_keys: int) -> None:
    """Raise ValueError naming the bad parameter and its value."""
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise ValueError(f"rate must be a positive finite number per second, got {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
    if max_keys < 1:
        raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")


def bad_cost(cost: int, burst: int) -> ValueError:
    return ValueError(f"cost must be between 1 and burst={burst}, got {cost!r}")
