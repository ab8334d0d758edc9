"""`subset`: picks the label subset of the upstream's endpoints from a request attribute.

The map from attribute values to selector chains is built at config time, so a request costs
one key extraction and one dict lookup; the chosen chain goes on `req.subset`, which the
forwarder hands to the cluster (proxy/cluster.py `pick_subsets`). See docs/locality.md.
"""

from __future__ import annotations

from typing import ClassVar

from edgeward.filters.api import ORDER_SPLIT, Filter, Reply, Request, RequestResult
from edgeward.routing.keys import KeySpec

# After authentication and users' filters (a consumer or a header a filter set is known),
# before the split (which only names the upstream).
ORDER_SUBSET = ORDER_SPLIT - 10

Chain = tuple[tuple[tuple[str, str], ...] | None, ...]


class Subset(Filter):
    """Sets `req.subset` from `key`'s value through `chains`; `unmatched` for other values
    (None: 503 no_subset)."""

    order: ClassVar[int] = ORDER_SUBSET

    def __init__(self, key: KeySpec, chains: dict[str, Chain], unmatched: Chain | None) -> None:
        self.name = "subset"
        self.key = key
        self.chains = chains
        self.unmatched = unmatched

    def on_request(self, req: Request) -> RequestResult:
        value = self.key.extract(req, req.route_name)
        chain = self.chains.get(value) if value is not None else None
        if chain is None:
            chain = self.unmatched
            if chain is None:
                return Reply.error(503, "no_subset")
        req.subset = chain
        return None
