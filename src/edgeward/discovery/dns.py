"""DNS service discovery: turn A/AAAA or SRV answers into the endpoint list of an upstream.

Core (sans-I/O, pure functions, tested with hypothesis):
  `srv_endpoints(records, addresses)`  keeps only the lowest-priority SRV group (RFC 2782) and
                                       expands each target to its addresses with the SRV port
                                       and weight;
  `refresh_delay(ttl, failures, ...)`  when to ask again: the shortest TTL of the answer, never
                                       sooner than `min_refresh` nor later than `max_refresh`;
                                       after failures an exponential backoff from `min_refresh`.

Shell: `DnsResolverWatcher` asks dnspython's asyncio resolver (the configured server, else
/etc/resolv.conf), compares the answer with the last one and calls `on_update(endpoints)` only
when the set changed. A failed lookup - timeout, SERVFAIL, NXDOMAIN, no records, or an answer
that yields no endpoint at all - keeps the last good answer: a DNS hiccup must never empty a
cluster (Envoy's strict DNS clusters keep their hosts on resolution failure as well).

Endpoints are `(host, port, weight)` tuples sorted ascending, so equal sets compare equal.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

log = logging.getLogger("edgeward.discovery.dns")

RecordType = Literal["A", "AAAA", "SRV", "auto"]
EndpointTuple = tuple[str, int, int]

# Floor on the refresh period, so a TTL of 0 or 1 cannot make us query in a tight loop.
# Envoy: dns_refresh_rate and dns_min_refresh_rate both default to 5 s; CoreDNS's kubernetes
# plugin serves TTL 5 s by default, so 5 s follows such records exactly.
DEFAULT_MIN_REFRESH = 5.0
# Ceiling on the refresh period: a 1-day TTL must not hide a changed fleet for a day.
# Envoy's DNS cache refreshes hosts at most every 60 s by default (dns_refresh_rate of the
# dynamic forward proxy); we allow up to 5 minutes, a common registry TTL, before re-asking.
DEFAULT_MAX_REFRESH = 300.0
# Time allowed for one lookup including retries: dnspython's own `lifetime` default (5 s),
# which is also c-ares' and glibc's per-query timeout (resolv.conf `timeout:5`).
DEFAULT_QUERY_TIMEOUT = 5.0
# SRV weight 0 means "pick very rarely" (RFC 2782); Endpoint weights start at 1, so 0 maps
# to this, the smallest weight a balancer understands.
SRV_ZERO_WEIGHT = 1


class SrvRecord(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str  # without the final dot; "." (service absent) is dropped by the shell


class Resolution(NamedTuple):
    """One successful lookup: the endpoints and the shortest TTL among the records used."""

    endpoints: list[EndpointTuple]
    ttl: float


class DnsLookupError(Exception):
    """A lookup that must not replace the last good answer; the message says why."""


def srv_endpoints(
    records: Iterable[SrvRecord], addresses: Mapping[str, Iterable[str]]
) -> list[EndpointTuple]:
    """Endpoints of the lowest-priority SRV group: one per (target address, port).

    `addresses` maps a target name to its resolved addresses; a target absent from it (it did
    not resolve) contributes nothing. Duplicates (two records naming the same address and
    port) keep the larger weight.
    """
    recs = list(records)
    if not recs:
        return []
    best = min(r.priority for r in recs)
    chosen: dict[tuple[str, int], int] = {}
    for r in recs:
        if r.priority != best:
            continue
        weight = r.weight if r.weight > 0 else SRV_ZERO_WEIGHT
        for addr in addresses.get(r.target, ()):
            key = (addr, r.port)
            chosen[key] = max(weight, chosen.get(key, 0))
    return sorted((host, port, weight) for (host, port), weight in chosen.items())


def refresh_delay(
    ttl: float | None,
    failures: int,
    *,
    min_refresh: float = DEFAULT_MIN_REFRESH,
    max_refresh: float = DEFAULT_MAX_REFRESH,
) -> float:
    """Seconds until the next lookup.

    After a success (`failures == 0`) the answer's shortest TTL, clamped to
    [min_refresh, max_refresh]. After `failures` consecutive failures:
    min_refresh * 2**(failures-1), capped at max_refresh (Envoy's dns_failure_refresh_rate
    is likewise an exponential backoff starting from the base refresh rate).
    """
    if failures > 0:
        exponent = min(failures - 1, 62)  # 2**62 already exceeds any cap; avoids overflow
        return min(max_refresh, min_refresh * math.ldexp(1.0, exponent))
    if ttl is None:
        return min_refresh
    return min(max_refresh, max(min_refresh, ttl))


class DnsResolverWatcher:
    """Keeps the endpoints behind one DNS name fresh and reports changes.

    record_type: "A" or "AAAA" (addresses, each given `port`, which is then required), "SRV"
    (targets, ports and weights from the records; `port` is not used), or "auto": SRV first
    (it carries ports and weights), and when the name has no SRV records, A and AAAA together
    with `port` - the order Finagle and Consul resolve in, and what discovery/config.py's
    `dns_type: auto` documents. An auto name asks for SRV on every refresh, so it notices
    when SRV records appear or vanish.
    resolver: (host, port) of the DNS server to ask, or None for /etc/resolv.conf.
    on_update(endpoints): called with the full sorted list whenever it differs from the last
    one reported (including the first successful lookup); never with an empty list.
    """

    def __init__(
        self,
        name: str,
        *,
        record_type: RecordType = "auto",
        port: int | None = None,
        resolver: tuple[str, int] | None = None,
        min_refresh: float = DEFAULT_MIN_REFRESH,
        max_refresh: float = DEFAULT_MAX_REFRESH,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        on_update: Callable[[list[EndpointTuple]], None],
    ) -> None:
        if not name:
            raise ValueError("name: a DNS name is required, got ''")
        if record_type not in ("A", "AAAA", "SRV", "auto"):
            raise ValueError(f"record_type: must be A, AAAA, SRV or auto, got {record_type!r}")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port: must be 1-65535, got {port!r}")
        if record_type in ("A", "AAAA") and port is None:
            raise ValueError(f"port: {record_type} records of {name!r} carry no port; "
                             f"one is required, got None")
        if not min_refresh > 0:
            raise ValueError(f"min_refresh: must be > 0 seconds, got {min_refresh!r}")
        if not max_refresh >= min_refresh:
            raise ValueError(f"max_refresh: must be >= min_refresh ({min_refresh!r}), "
                             f"got {max_refresh!r}")
        if not query_timeout > 0:
            raise ValueError(f"query_timeout: must be > 0 seconds, got {query_timeout!r}")
        self.name = name
        self.record_type = record_type
        # what the last lookup used: "srv" or "address" ("auto" until the first lookup)
        self.kind = {"SRV": "srv", "A": "address", "AAAA": "address"}.get(record_type, "auto")
        self.port = port
        self.min_refresh = min_refresh
        self.max_refresh = max_refresh
        self.on_update = on_update
        self.endpoints: list[EndpointTuple] = []  # last good answer
        self.failures = 0  # consecutive failed lookups
        self.lookups = 0  # lookups attempted, for metrics and tests
        self._resolver = self._make_resolver(resolver, query_timeout)
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _make_resolver(
        server: tuple[str, int] | None, timeout: float
    ) -> dns.asyncresolver.Resolver:
        if server is None:
            res = dns.asyncresolver.Resolver()  # reads /etc/resolv.conf
        else:
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = [server[0]]
            res.port = server[1]
        res.lifetime = timeout
        res.timeout = timeout
        return res

    # -- one lookup ---------------------------------------------------------------------

    async def _query(self, qname: str, rdtype: str) -> dns.resolver.Answer | None:
        """An answer, or None when the name exists but has no records of this type."""
        try:
            return await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NoAnswer:
            return None

    async def _addresses(self, qname: str, rdtypes: tuple[str, ...]) -> tuple[list[str], float]:
        addrs: list[str] = []
        ttl = math.inf
        for rdtype in rdtypes:
            answer = await self._query(qname, rdtype)
            if answer is None or answer.rrset is None:
                continue
            ttl = min(ttl, float(answer.rrset.ttl))
            addrs.extend(rd.address for rd in answer.rrset)
        return addrs, ttl

    async def _resolve_srv(self, answer: dns.resolver.Answer | None) -> Resolution:
        if answer is None or answer.rrset is None:
            raise DnsLookupError(f"{self.name}: no SRV records")
        ttl = float(answer.rrset.ttl)
        records = [
            SrvRecord(rd.priority, rd.weight, rd.port, rd.target.to_text(omit_final_dot=True))
            for rd in answer.rrset
            if rd.target != dns.name.root
        ]
        best = min((r.priority for r in records), default=0)
        targets = sorted({r.target for r in records if r.priority == best})
        found = await asyncio.gather(*(self._target_addresses(t) for t in targets))
        addresses: dict[str, list[str]] = {}
        for target, (addrs, target_ttl) in zip(targets, found, strict=True):
            if addrs:
                addresses[target] = addrs
                ttl = min(ttl, target_ttl)
        return Resolution(srv_endpoints(records, addresses), ttl)

    async def _target_addresses(self, target: str) -> tuple[list[str], float]:
        # A first; AAAA only for IPv6-only targets. A target that fails to resolve is left
        # out (its siblings still serve) rather than failing the whole lookup.
        try:
            addrs, ttl = await self._addresses(target, ("A",))
            if not addrs:
                addrs, ttl = await self._addresses(target, ("AAAA",))
        except dns.exception.DNSException as exc:
            log.warning("dns %s: SRV target %s did not resolve: %s", self.name, target, exc)
            return [], math.inf
        return addrs, ttl

    async def _resolve_address(self) -> Resolution:
        if self.port is None:
            raise DnsLookupError(f"{self.name}: no SRV records, and no port configured "
                                 f"for its A/AAAA records")
        rdtypes = ("A", "AAAA") if self.record_type == "auto" else (self.record_type,)
        addrs, ttl = await self._addresses(self.name, rdtypes)
        return Resolution(sorted({(a, self.port, 1) for a in addrs}), ttl)

    async def _resolve_auto(self) -> Resolution:
        try:
            srv = await self._query(self.name, "SRV")
        except dns.resolver.NXDOMAIN:
            srv = None  # the A lookup below reports the missing name if it is missing
        if srv is not None and srv.rrset is not None:
            self.kind = "srv"
            return await self._resolve_srv(srv)
        self.kind = "address"
        return await self._resolve_address()

    async def resolve(self) -> Resolution:
        """One lookup. Raises DnsLookupError or dns.exception.DNSException on failure."""
        if self.record_type == "SRV":
            res = await self._resolve_srv(await self._query(self.name, "SRV"))
        elif self.record_type == "auto":
            res = await self._resolve_auto()
        else:
            res = await self._resolve_address()
        if not res.endpoints:
            raise DnsLookupError(f"{self.name}: the answer names no endpoint")
        return res

    async def refresh(self) -> float:
        """Look up once, apply the result, and return the seconds until the next lookup."""
        self.lookups += 1
        try:
            res = await self.resolve()
        except (DnsLookupError, dns.exception.DNSException) as exc:
            self.failures += 1
            delay = refresh_delay(None, self.failures, min_refresh=self.min_refresh,
                                  max_refresh=self.max_refresh)
            log.warning("dns %s: lookup failed (%s); keeping %d endpoints, retry in %.1fs",
                        self.name, exc, len(self.endpoints), delay)
            return delay
        self.failures = 0
        if res.endpoints != self.endpoints:
            self.endpoints = res.endpoints
            self.on_update(list(res.endpoints))
        ttl = None if math.isinf(res.ttl) else res.ttl
        return refresh_delay(ttl, 0, min_refresh=self.min_refresh, max_refresh=self.max_refresh)

    # -- lifecycle ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            delay = await self.refresh()
            await asyncio.sleep(delay)

    def start(self) -> None:
        """Begin watching (the first lookup runs at once). Needs a running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"dns-watch:{self.name}"
            )

    async def stop(self) -> None:
        """Stop watching; the last good endpoints stay readable in `endpoints`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def __repr__(self) -> str:
        return (f"<DnsResolverWatcher {self.name} {self.kind} endpoints={len(self.endpoints)} "
                f"failures={self.failures}>")
