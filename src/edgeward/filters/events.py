"""Counts of what built-in filters did (mirrors sent, faults injected, responses compressed,
CORS and IP refusals), per worker, kept across reloads.

A filter adds to a plain dict (`count`); telemetry copies the totals into the metric families
when metrics are read (`edgeward.observe.gateway_metrics.FILTER_FAMILIES`), so counting costs a
dict update and filters import nothing of the metrics code. One `FilterEvents` per worker lives
in the composition root's registry, so a reload that rebuilds a filter keeps counting on.
"""

from __future__ import annotations

from typing import Final

# Event families (the first item of a key) and the metric each becomes.
MIRROR: Final = "mirror"            # (route, upstream, result)
FAULT: Final = "fault"              # (route, fault kind)
COMPRESS: Final = "compress"        # (route, algorithm)
CORS_REJECTED: Final = "cors_rejected"  # (route,)
IP_DENIED: Final = "ip_denied"      # (route,)
# The cache (edgeward.filters.cache, edgeward.cache.tier).
CACHE: Final = "cache"              # (route, result: HIT/MISS/STALE/REVALIDATED/BYPASS)
CACHE_SERVED_BYTES: Final = "cache_served_bytes"  # (route,) += body bytes
CACHE_STORED_BYTES: Final = "cache_stored_bytes"  # (route,) += body bytes
CACHE_PURGE: Final = "cache_purge"  # (kind, source): the first label is the kind, not a route
CACHE_SHARED: Final = "cache_shared"  # (route, result): the shared tier (edgeward.cache.shared)


class FilterEvents:
    """Monotonic event counts by (family, route, label, label)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, str], int] = {}

    def count(self, family: str, route: str, a: str = "", b: str = "", n: int = 1) -> None:
        key = (family, route, a, b)
        counts = self.counts
        counts[key] = counts.get(key, 0) + n

    def total(self, family: str) -> int:
        return sum(n for k, n in self.counts.items() if k[0] == family)

    def __repr__(self) -> str:
        return f"<FilterEvents {len(self.counts)} keys>"
