"""A Python filter for benchmarks/five_filters.yaml: adds one request header, as a user's
filter would (a plain call on the hot path, no await)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeward.filters import Filter, Reply, Request


@dataclass(frozen=True, kw_only=True)
class StampConfig:
    name: str = "x-stamp"
    value: str = "edge"


class Stamp(Filter):
    """Sets one request header to a fixed value."""

    def __init__(self, config: StampConfig) -> None:
        self.name = config.name
        self.value = config.value

    def on_request(self, req: Request) -> Reply | None:
        req.headers.set(self.name, self.value)
        return None
