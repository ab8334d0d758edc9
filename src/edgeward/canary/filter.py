"""`canary:` on a route: the filter that sends each request to the stable or the canary arm
and records the outcome in that arm's window (compiled; the request path).

Choice, in order: `force_canary` holds -> canary; `force_stable` holds -> stable; weight 0 ->
stable, 100 -> canary; a request carrying the sticky key -> canary when hash64(key) % 10,000
is below the weight in buckets (so one user stays on one arm, and raising the weight only
moves users from stable to canary, never back: the `percent_of` rule); otherwise a draw.

Outcome (on_done): an error is a 5xx sent to the client (the upstream's, or the gateway's own
502/503/504 for an upstream that failed); an exchange the client left before any response
counts in neither arm. The duration is from the request head to the end of the exchange.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import ClassVar

from edgeward.balance.hashing import hash64
from edgeward.canary.arms import BUCKETS, CanaryArms
from edgeward.filters.api import ORDER_SPLIT, Filter, Request, RequestResult, Response
from edgeward.routing.keys import KeySpec
from edgeward.routing.split import Condition


class CanaryFilter(Filter):
    order: ClassVar[int] = ORDER_SPLIT

    def __init__(self, arms: CanaryArms, route: str, *, sticky: KeySpec | None,
                 force_canary: Condition | None, force_stable: Condition | None,
                 rng: random.Random, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = "canary"
        self.arms = arms
        self.route = route
        self.sticky = sticky
        self.force_canary = force_canary
        self.force_stable = force_stable
        self.rng = rng
        self.clock = clock

    def on_request(self, req: Request) -> RequestResult:
        arms = self.arms
        req.upstream = arms.canary_name if self._to_canary(req, arms) else arms.stable_name
        return None

    def _to_canary(self, req: Request, arms: CanaryArms) -> bool:
        forced = self.force_canary
        if forced is not None and forced.holds(req, self.route):
            return True
        forced = self.force_stable
        if forced is not None and forced.holds(req, self.route):
            return False
        threshold = arms.threshold
        if threshold <= 0:
            return False
        if threshold >= BUCKETS:
            return True
        sticky = self.sticky
        if sticky is not None:
            key = sticky.extract(req, self.route)
            if key is not None:
                return hash64(key) % BUCKETS < threshold
        return self.rng.random() * BUCKETS < threshold

    def on_done(self, req: Request, resp: Response | None) -> None:
        if resp is None:
            return
        arms = self.arms
        duration = self.clock() - req.started
        error = resp.status >= 500
        if req.upstream == arms.canary_name:
            arms.canary.record(duration, error)
        else:
            arms.stable.record(duration, error)
