"""IP rules against the standard library's ipaddress as the oracle, without sockets."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from edgeward.filters.ip import DECISION_CACHE, IpRules, Ranges

v4net = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: str(ipaddress.ip_network((t[0], t[1]), strict=False)))
v6net = st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)).map(
    lambda t: str(ipaddress.ip_network((t[0], t[1]), strict=False)))
network = st.one_of(v4net, v6net)
address = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(n)}"),
)


def oracle(ip: str, allow: list[str] | None, deny: list[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped

    def inside(nets: list[str]) -> bool:
        return any(addr in ipaddress.ip_network(n) for n in nets
                   if ipaddress.ip_network(n).version == addr.version)

    return not inside(deny) and (allow is None or inside(allow))


@given(st.one_of(st.none(), st.lists(network, max_size=6)), st.lists(network, max_size=6),
       st.lists(address, min_size=1, max_size=10))
def test_decisions_match_the_oracle(allow: list[str] | None, deny: list[str],
                                    ips: list[str]) -> None:
    rules = IpRules(allow, deny)
    for ip in ips:
        assert rules.allows(ip) == oracle(ip, allow, deny), ip
        assert rules.allows(ip) == oracle(ip, allow, deny)  # cached answer too


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=20),
       st.integers(-5, 1100))
def test_merged_ranges_hold_exactly_their_union(pairs: list[tuple[int, int]], x: int) -> None:
    ranges = Ranges([(a, a + w) for a, w in pairs])
    assert (x in ranges) == any(a <= x <= a + w for a, w in pairs)


def test_unparseable_address_is_in_no_network() -> None:
    assert IpRules(["10.0.0.0/8"], []).allows("") is False
    assert IpRules(None, ["10.0.0.0/8"]).allows("not-an-ip") is True


def test_the_decision_cache_stays_bounded() -> None:
    rules = IpRules(None, ["10.0.0.0/8"])
    for n in range(DECISION_CACHE * 2 + 5):
        rules.allows(str(ipaddress.IPv4Address(n)))
    assert len(rules.cache) <= DECISION_CACHE
