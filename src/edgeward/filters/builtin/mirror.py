"""Config of `mirror` (docs/filters.md, "Mirroring").

    mirror: {upstream: shadow, percent: 10}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edgeward.filters.builtin.headers import _REQUEST_OWNED, _name_problem
from edgeward.filters.config import BuildContext, register
from edgeward.filters.mirror import Mirror
from edgeward.values import Duration, Size, doc

# Envoy mirrors 100% of a route's requests unless runtime_fraction says less.
DEFAULT_PERCENT: Final = 100.0
# A shadow is a test: it gets one second (Envoy's default per-try idle budget is of that order
# for health checks), so a stuck shadow frees its slot quickly.
DEFAULT_TIMEOUT: Final = 1.0
# Bodies are copied whole before the copy is sent; 1 MiB covers API payloads while bounding
# what a worker holds per mirrored request (nginx `mirror` keeps the whole body too).
DEFAULT_MAX_BODY: Final = 1 << 20
# Copies under way per worker (each costs a connection to the shadow); beyond, drop.
DEFAULT_MAX_IN_FLIGHT: Final = 128
# Marks copies so the shadow can tell them apart (Envoy marks them by a "-shadow" Host suffix;
# a header keeps the Host the upstream expects).
DEFAULT_MARKER: Final = "x-edgeward-mirror"


@dataclass(frozen=True, kw_only=True)
class MirrorConfig:
    upstream: str = field(metadata=doc("the upstream copies go to"))
    percent: float = field(default=DEFAULT_PERCENT, metadata=doc("share of requests, 0-100"))
    timeout: Duration = field(
        default=DEFAULT_TIMEOUT, metadata=doc("a copy's whole exchange, connect included"))
    max_body: Size = field(
        default=DEFAULT_MAX_BODY, metadata=doc("requests with larger bodies are not copied"))
    max_in_flight: int = field(
        default=DEFAULT_MAX_IN_FLIGHT, metadata=doc("copies under way per worker; then drop"))
    marker: str = field(
        default=DEFAULT_MARKER, metadata=doc("header set to 1 on every copy"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not 0.0 <= self.percent <= 100.0:
            out.append(("percent", f"must be between 0 and 100, got {self.percent}"))
        if self.timeout <= 0:
            out.append(("timeout", "must be above 0"))
        if self.max_in_flight < 1:
            out.append(("max_in_flight", "must be at least 1"))
        out.extend(_name_problem("marker", self.marker, _REQUEST_OWNED))
        return out


def _upstreams(config: MirrorConfig) -> list[tuple[str, str]]:
    return [("upstream", config.upstream)]


def _make(config: MirrorConfig, ctx: BuildContext) -> Mirror:
    if ctx.fetch is None:
        raise ValueError("mirror needs the gateway's subrequest client")
    return Mirror(cluster=ctx.clusters.get(config.upstream), fetch=ctx.fetch,
                  upstream=config.upstream,
                  percent=config.percent, timeout=config.timeout, max_body=config.max_body,
                  max_in_flight=config.max_in_flight, marker=config.marker, rng=ctx.rng,
                  events=ctx.events)


register("mirror", MirrorConfig, _make, upstreams=_upstreams)
