"""An immutable compiled config: the route table and the clusters it points to.

A reload builds a new Snapshot off to the side and swaps one reference; exchanges keep the
snapshot they started with.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from edgeward.http.listener import DEFAULT_REPLAY_LIMIT
from edgeward.http.message import RequestHead
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.route import Route
from edgeward.routing.table import RouteTable


class Snapshot:
    __slots__ = ("_match", "_table", "routes", "clusters", "replay_limit", "source_hash", "rng")

    def __init__(
        self,
        match: Callable[[RequestHead], Route | None],
        routes: list[Route],
        clusters: dict[str, Cluster],
        *,
        replay_limit: int = DEFAULT_REPLAY_LIMIT,
        source_hash: str = "",
    ) -> None:
        self._match = match
        # The usual matcher is a RouteTable's bound `match`: keep the table too, so `match`
        # calls it directly (compiled: a native call instead of a call through a bound method).
        table = getattr(match, "__self__", None)
        self._table: RouteTable[Route] | None = (
            table if isinstance(table, RouteTable)
            and getattr(match, "__name__", "") == "match" else None)
        self.routes = routes
        self.clusters = clusters
        self.replay_limit = replay_limit
        self.source_hash = source_hash
        self.rng = random.Random()  # retry jitter

    def match(self, head: RequestHead) -> Route | None:
        """The route `head` goes to, or None."""
        table = self._table
        if table is not None:
            return table.match(head)
        return self._match(head)
