"""`ip`: allow and deny lists of networks (IPv4 and IPv6), on the client address after
`server.trusted_proxies` (`req.client_ip`); a refused client gets 403 `ip_denied`.

Rules (nginx `allow`/`deny` lists, Traefik IPAllowList, APISIX ip-restriction): an address in
a `deny` network is refused; with an `allow` list, so is an address in none of its networks.
Deny wins where both match, so `allow: [10.0.0.0/8], deny: [10.6.6.0/24]` carves a hole.

Networks are merged into sorted integer ranges when the config is compiled; a decision is a
binary search, remembered per address (bounded) so a busy client costs one dict lookup.
An IPv4-mapped IPv6 address (::ffff:10.1.2.3, from dual-stack sockets) is read as IPv4.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from typing import ClassVar, Final

from edgeward.filters.api import ORDER_IP, Filter, Reply, Request, RequestResult
from edgeward.filters.events import IP_DENIED, FilterEvents

# Decisions remembered: more than a gateway's usual distinct clients per worker between two
# clears, small enough (about 1 MiB at most) not to matter; when full it starts again.
DECISION_CACHE: Final = 8192


class Ranges:
    """Sorted, merged, inclusive integer ranges of one address family."""

    __slots__ = ("starts", "ends")

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1] + 1:
                last = merged[-1]
                merged[-1] = (last[0], max(last[1], end))
            else:
                merged.append((start, end))
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def __contains__(self, value: object) -> bool:
        assert isinstance(value, int)
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    def __len__(self) -> int:
        return len(self.starts)


class IpRules:
    """The allow/deny decision for an address (sans-I/O, no clock)."""

    __slots__ = ("allow4", "allow6", "deny4", "deny6", "has_allow", "cache")

    def __init__(self, allow: list[str] | None, deny: list[str]) -> None:
        self.has_allow = allow is not None
        a4, a6 = _ranges(allow or [])
        d4, d6 = _ranges(deny)
        self.allow4, self.allow6 = Ranges(a4), Ranges(a6)
        self.deny4, self.deny6 = Ranges(d4), Ranges(d6)
        self.cache: dict[str, bool] = {}

    def allows(self, ip: str) -> bool:
        cache = self.cache
        hit = cache.get(ip)
        if hit is None:
            hit = self.decide(ip)
            if len(cache) >= DECISION_CACHE:
                cache.clear()
            cache[ip] = hit
        return hit

    def decide(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return not self.has_allow  # no address: in no network
        if isinstance(addr, ipaddress.IPv6Address):
            mapped = addr.ipv4_mapped
            if mapped is None:
                value = int(addr)
                return value not in self.deny6 and (not self.has_allow or value in self.allow6)
            addr = mapped
        value = int(addr)
        return value not in self.deny4 and (not self.has_allow or value in self.allow4)


def _ranges(networks: list[str]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for text in networks:
        net = ipaddress.ip_network(text, strict=False)
        pair = (int(net.network_address), int(net.broadcast_address))
        (v4 if net.version == 4 else v6).append(pair)
    return v4, v6


class IpFilter(Filter):
    order: ClassVar[int] = ORDER_IP

    def __init__(self, rules: IpRules, events: FilterEvents) -> None:
        self.name = "ip"
        self.rules = rules
        self.events = events

    def on_request(self, req: Request) -> RequestResult:
        if self.rules.allows(req.client_ip):
            return None
        self.events.count(IP_DENIED, req.route_name)
        return Reply.error(403, "ip_denied")
