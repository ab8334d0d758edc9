"""An immutable compiled config: the route table and the clusters it points to.

A reload builds a new Snapshot off to the side and swaps one reference; exchanges keep the
snapshot they started with.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from edgeward.config.schema import DEFAULT_REPLAY_LIMIT
from edgeward.http.message import RequestHead
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.route import Route


class Snapshot:
    __slots__ = ("match", "routes", "clusters", "replay_limit", "source_hash", "rng")

    def __init__(
        self,
        match: Callable[[RequestHead], Route | None],
        routes: list[Route],
        clusters: dict[str, Cluster],
        *,
        replay_limit: int = DEFAULT_REPLAY_LIMIT,
        source_hash: str = "",
    ) -> None:
        self.match = match
        self.routes = routes
        self.clusters = clusters
        self.replay_limit = replay_limit
        self.source_hash = source_hash
        self.rng = random.Random()  # retry jitter
