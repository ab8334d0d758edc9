"""`upstreams.NAME.discovery`: where an upstream's endpoints come from when not a static list.

    discovery: {etcd: orders}                       # instances registered under
                                                    # /edgeward/services/orders/ (top-level etcd:)
    discovery: {dns: orders.internal, dns_type: SRV}
    discovery: {dns: orders.internal, port: 8000}   # A/AAAA records give addresses, not ports

Exactly one of `etcd` and `dns` is set. The dns_* fields are read by discovery/dns.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgeward.values import Address, Duration, doc

# Record type "auto": SRV first (it carries ports and weights), then A and AAAA - the order
# Finagle's and Consul's DNS resolution take; an explicit type skips the probing.
DEFAULT_DNS_TYPE: Literal["A", "AAAA", "SRV", "auto"] = "auto"
# Floor on re-resolution when a record's TTL is 0 or tiny: nginx's `resolver ... valid=` is
# usually set to a few seconds, Envoy's dns_refresh_rate defaults to 5000 ms.
DEFAULT_DNS_REFRESH = 5.0


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    etcd: str | None = field(
        default=None,
        metadata=doc("service name registered in etcd (/edgeward/services/NAME/); off by default"),
    )
    dns: str | None = field(
        default=None, metadata=doc("DNS name to resolve for endpoints; off by default")
    )
    dns_type: Literal["A", "AAAA", "SRV", "auto"] = field(
        default=DEFAULT_DNS_TYPE,
        metadata=doc("record type; auto tries SRV then A/AAAA (as Finagle/Consul do)"),
    )
    dns_refresh: Duration = field(
        default=DEFAULT_DNS_REFRESH,
        metadata=doc("minimum re-resolve interval when TTL is 0; 5s as Envoy dns_refresh_rate"),
    )
    port: int | None = field(
        default=None, metadata=doc("port for A/AAAA answers (SRV answers carry their own)")
    )
    resolver: Address | None = field(
        default=None, metadata=doc("DNS server HOST:PORT; default is the system resolver")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.etcd is None) == (self.dns is None):
            problems.append(("", "set exactly one of etcd or dns"))
        if self.etcd is not None and (not self.etcd or "/" in self.etcd):
            problems.append(("etcd", f"service name must be non-empty without '/', got "
                                     f"{self.etcd!r}"))
        if self.dns is not None and not self.dns.strip():
            problems.append(("dns", "must be a non-empty name"))
        if self.dns_refresh <= 0:
            problems.append(("dns_refresh", f"must be > 0, got {self.dns_refresh}"))
        if self.port is not None and not 0 < self.port < 65536:
            problems.append(("port", f"must be 1-65535, got {self.port}"))
        if self.dns is not None and self.dns_type in ("A", "AAAA") and self.port is None:
            problems.append(("port", f"required with dns_type {self.dns_type} (A/AAAA records "
                                     "carry no port)"))
        return problems
