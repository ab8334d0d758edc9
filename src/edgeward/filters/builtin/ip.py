"""Config of `ip` (docs/filters.md, "IP rules").

    ip: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.6.6.0/24]}

A bare address is one host (/32, /128). A network written with host bits set (10.0.0.1/8) is
refused: it is most often a typo for another network, and nginx only warns about it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from edgeward.filters.config import BuildContext, register
from edgeward.filters.ip import IpFilter, IpRules
from edgeward.values import doc


@dataclass(frozen=True, kw_only=True)
class IpConfig:
    allow: list[str] | None = field(
        default=None,
        metadata=doc("networks (CIDR or address) a client must be in; null: any client not "
                     "denied"))
    deny: list[str] = field(
        default_factory=list, metadata=doc("networks refused (wins over allow)"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key, nets in (("allow", self.allow or []), ("deny", self.deny)):
            for i, text in enumerate(nets):
                reason = _network_problem(text)
                if reason:
                    out.append((f"{key}[{i}]", reason))
        if self.allow is None and not self.deny:
            out.append(("", "give allow, deny or both"))
        return out


def _network_problem(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"not an IP network or address: {text!r} ({exc})"
        return f"{text} has host bits set; the network is {net}"
    return None


def _make(config: IpConfig, ctx: BuildContext) -> IpFilter:
    return IpFilter(IpRules(config.allow, config.deny), ctx.events)


register("ip", IpConfig, _make)
