"""A compiled route: what a matched request gets — limits, timeouts and where it goes."""

from __future__ import annotations

from edgeward.http.message import RequestHead
from edgeward.proxy.cluster import Cluster
from edgeward.routing.split import TrafficSplit


class Route:
    __slots__ = ("name", "timeout", "max_body_size", "split")

    def __init__(
        self,
        name: str,
        *,
        split: TrafficSplit[Cluster],
        timeout: float | None,
        max_body_size: int | None,
    ) -> None:
        self.name = name
        self.split = split
        self.timeout = timeout
        self.max_body_size = max_body_size

    def choose(self, head: RequestHead) -> Cluster:
        return self.split.choose(head, self.name)

    def __repr__(self) -> str:
        return f"<Route {self.name}>"
