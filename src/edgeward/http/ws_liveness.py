"""When a WebSocket tunnel is idle, when to ping one of its sides, and when a side is dead.

Each side of a tunnel has two times: when a byte was last read from it (`read_at`) and when
the gateway last pinged it (`pinged_at`, 0 for never). With `ping_interval` set, a side silent
for `ping_interval` is pinged; a side that sends nothing for another `ping_interval` after the
ping is dead (its pong, like any byte, proves it alive). The tunnel is idle when neither side
sent anything for `idle_timeout` (math.inf: never).

No clock here: the tunnel passes `now` and the times, and gets a verdict and when to ask again.
"""

from __future__ import annotations

import math
from typing import Final

ALIVE: Final = 0   # nothing to do before the returned time
PING: Final = 1    # ping this side now
DEAD: Final = 2    # this side did not answer its ping


def side_verdict(now: float, ping_interval: float, read_at: float,
                 pinged_at: float) -> tuple[int, float]:
    """(ALIVE | PING | DEAD, when to look again) for one side of a tunnel."""
    if ping_interval == math.inf:
        return ALIVE, math.inf
    if pinged_at > read_at:  # a ping is outstanding
        due = pinged_at + ping_interval
        return (DEAD, math.inf) if now >= due else (ALIVE, due)
    due = read_at + ping_interval
    return (PING, now + ping_interval) if now >= due else (ALIVE, due)


def idle_due(idle_timeout: float, client_read_at: float, upstream_read_at: float) -> float:
    """When the tunnel becomes idle (math.inf: never), counted from the last byte either way."""
    return max(client_read_at, upstream_read_at) + idle_timeout
