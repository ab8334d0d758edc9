"""DNS discovery against a real authoritative UDP server started on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.discovery.dns import (
    DEFAULT_MAX_REFRESH,
    DEFAULT_MIN_REFRESH,
    DEFAULT_QUERY_TIMEOUT,
    DnsResolverWatcher,
    SrvRecord,
    refresh_delay,
    srv_endpoints,
)

# ---------------------------------------------------------------------------------------------
# A tiny authoritative server: answers from a dict the test mutates.


class Zone:
    def __init__(self) -> None:
        # (lower-case name without final dot, "A"|"AAAA"|"SRV") -> (ttl, [rdata text])
        self.records: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.queries: list[tuple[str, str]] = []
        self.mode = "ok"  # ok | servfail | drop

    def set(self, name: str, rdtype: str, ttl: int, *datas: str) -> None:
        self.records[(name, rdtype)] = (ttl, list(datas))

    def count(self, name: str, rdtype: str) -> int:
        return self.queries.count((name, rdtype))


class _Server(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # a datagram transport; asyncio's class is not a subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.zone.queries.append((name, rdtype))
        if self.zone.mode == "drop":
            return
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if self.zone.mode == "servfail":
            resp.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.zone.records:
            ttl, datas = self.zone.records[(name, rdtype)]
            resp.answer.append(dns.rrset.from_text_list(q.name, ttl, "IN", rdtype, datas))
        elif not any(n == name for n, _ in self.zone.records):
            resp.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(resp.to_wire(), addr)


@pytest.fixture
async def zone() -> AsyncIterator[tuple[Zone, tuple[str, int]]]:
    z = Zone()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Server(z), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield z, ("127.0.0.1", port)
    finally:
        transport.close()


class Updates:
    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int, int]]] = []

    def __call__(self, endpoints: list[tuple[str, int, int]]) -> None:
        self.calls.append(endpoints)


def watcher(server: tuple[str, int], name: str, updates: Updates, **kw: Any) -> DnsResolverWatcher:
    kw.setdefault("min_refresh", 0.1)
    kw.setdefault("query_timeout", 0.5)
    return DnsResolverWatcher(name, resolver=server, on_update=updates, **kw)


# ---------------------------------------------------------------------------------------------
# Record types


async def test_a_records_get_the_configured_port(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("api.test", "A", 30, "10.0.0.2", "10.0.0.1")
    updates = Updates()
    w = watcher(server, "api.test", updates, record_type="A", port=8080)
    delay = await w.refresh()
    assert updates.calls == [[("10.0.0.1", 8080, 1), ("10.0.0.2", 8080, 1)]]
    assert delay == 30.0


async def test_aaaa_records(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("v6.test", "AAAA", 30, "fd00::1")
    updates = Updates()
    w = watcher(server, "v6.test", updates, record_type="AAAA", port=443)
    await w.refresh()
    assert updates.calls == [[("fd00::1", 443, 1)]]


async def test_auto_host_name_merges_a_and_aaaa(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("dual.test", "A", 30, "10.0.0.1")
    z.set("dual.test", "AAAA", 30, "fd00::1")
    updates = Updates()
    w = watcher(server, "dual.test", updates, record_type="auto", port=80)
    await w.refresh()
    assert updates.calls == [[("10.0.0.1", 80, 1), ("fd00::1", 80, 1)]]


async def test_auto_host_name_with_only_a_records(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("v4only.test", "A", 30, "10.0.0.9")
    updates = Updates()
    w = watcher(server, "v4only.test", updates, port=80)
    await w.refresh()
    assert updates.calls == [[("10.0.0.9", 80, 1)]]
    assert w.failures == 0


async def test_srv_uses_lowest_priority_group_ports_and_weights(
    zone: tuple[Zone, tuple[str, int]],
) -> None:
    z, server = zone
    z.set("_http._tcp.orders.test", "SRV", 30,
          "10 60 8001 a.orders.test.", "10 0 8002 b.orders.test.", "20 100 9000 c.orders.test.")
    z.set("a.orders.test", "A", 30, "10.0.1.1", "10.0.1.2")
    z.set("b.orders.test", "A", 30, "10.0.1.3")
    z.set("c.orders.test", "A", 30, "10.0.9.9")
    updates = Updates()
    w = watcher(server, "_http._tcp.orders.test", updates, record_type="auto")
    await w.refresh()
    assert updates.calls == [[
        ("10.0.1.1", 8001, 60), ("10.0.1.2", 8001, 60), ("10.0.1.3", 8002, 1),
    ]]
    assert z.count("c.orders.test", "A") == 0  # the backup group is not even looked up


async def test_srv_ttl_is_the_shortest_of_srv_and_target_records(
    zone: tuple[Zone, tuple[str, int]],
) -> None:
    z, server = zone
    z.set("_svc._tcp.t.test", "SRV", 60, "0 1 7000 a.t.test.")
    z.set("a.t.test", "A", 7, "10.0.0.1")
    w = watcher(server, "_svc._tcp.t.test", Updates(), record_type="SRV")
    assert await w.refresh() == 7.0


async def test_srv_target_that_fails_is_left_out(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("_svc._tcp.t.test", "SRV", 30, "0 1 7000 a.t.test.", "0 1 7000 gone.t.test.")
    z.set("a.t.test", "A", 30, "10.0.0.1")
    updates = Updates()
    w = watcher(server, "_svc._tcp.t.test", updates, record_type="SRV")
    await w.refresh()
    assert updates.calls == [[("10.0.0.1", 7000, 1)]]


async def test_srv_target_with_only_aaaa(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("_svc._tcp.t.test", "SRV", 30, "0 1 7000 six.t.test.")
    z.set("six.t.test", "AAAA", 30, "fd00::7")
    updates = Updates()
    w = watcher(server, "_svc._tcp.t.test", updates, record_type="SRV")
    await w.refresh()
    assert updates.calls == [[("fd00::7", 7000, 1)]]


async def test_auto_prefers_srv_and_follows_when_srv_records_appear(
    zone: tuple[Zone, tuple[str, int]],
) -> None:
    z, server = zone
    z.set("orders.test", "A", 30, "10.0.0.1")
    updates = Updates()
    w = watcher(server, "orders.test", updates, port=80)  # record_type defaults to auto
    await w.refresh()
    assert (w.kind, updates.calls[-1]) == ("address", [("10.0.0.1", 80, 1)])
    z.set("orders.test", "SRV", 30, "0 5 9000 node.orders.test.")
    z.set("node.orders.test", "A", 30, "10.0.0.7")
    await w.refresh()
    assert (w.kind, updates.calls[-1]) == ("srv", [("10.0.0.7", 9000, 5)])


async def test_auto_without_srv_or_port_fails_instead_of_guessing(
    zone: tuple[Zone, tuple[str, int]],
) -> None:
    z, server = zone
    z.set("orders.test", "A", 30, "10.0.0.1")
    updates = Updates()
    w = watcher(server, "orders.test", updates)  # auto, no port
    await w.refresh()
    assert (updates.calls, w.failures) == ([], 1)


# ---------------------------------------------------------------------------------------------
# Changes, failures, TTL


async def test_update_only_when_the_set_changes(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("api.test", "A", 30, "10.0.0.1", "10.0.0.2")
    updates = Updates()
    w = watcher(server, "api.test", updates, record_type="A", port=80)
    await w.refresh()
    z.set("api.test", "A", 30, "10.0.0.2", "10.0.0.1")  # same set, other order
    await w.refresh()
    assert len(updates.calls) == 1
    z.set("api.test", "A", 30, "10.0.0.2", "10.0.0.3")
    await w.refresh()
    assert updates.calls[-1] == [("10.0.0.2", 80, 1), ("10.0.0.3", 80, 1)]
    assert len(updates.calls) == 2


@pytest.mark.parametrize("breakage", ["servfail", "nxdomain", "no_records", "timeout"])
async def test_failure_keeps_the_last_good_answer_and_backs_off(
    zone: tuple[Zone, tuple[str, int]], breakage: str,
) -> None:
    z, server = zone
    z.set("api.test", "A", 30, "10.0.0.1")
    z.set("api.test", "TXT", 30, '"keeps the name alive"')
    updates = Updates()
    w = watcher(server, "api.test", updates, record_type="A", port=80,
                min_refresh=0.5, query_timeout=0.3)
    await w.refresh()
    if breakage == "servfail":
        z.mode = "servfail"
    elif breakage == "timeout":
        z.mode = "drop"
    elif breakage == "nxdomain":
        z.records.clear()
    else:
        del z.records[("api.test", "A")]
    first = await w.refresh()
    second = await w.refresh()
    assert (first, second) == (0.5, 1.0)  # exponential backoff from min_refresh
    assert w.endpoints == [("10.0.0.1", 80, 1)]
    assert len(updates.calls) == 1
    z.mode = "ok"
    z.set("api.test", "A", 30, "10.0.0.5")
    assert await w.refresh() == 30.0
    assert w.failures == 0
    assert updates.calls[-1] == [("10.0.0.5", 80, 1)]


async def test_running_watcher_requeries_when_ttl_expires(
    zone: tuple[Zone, tuple[str, int]],
) -> None:
    z, server = zone
    z.set("api.test", "A", 1, "10.0.0.1")
    updates = Updates()
    w = watcher(server, "api.test", updates, record_type="A", port=80, min_refresh=0.1)
    w.start()
    try:
        await asyncio.sleep(0.6)
        assert z.count("api.test", "A") == 1  # TTL 1 s not yet expired: no second query
        z.set("api.test", "A", 1, "10.0.0.2")
        deadline = time.monotonic() + 3.0
        while len(updates.calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert updates.calls == [[("10.0.0.1", 80, 1)], [("10.0.0.2", 80, 1)]]
        assert z.count("api.test", "A") == 2
    finally:
        await w.stop()
    queries = z.count("api.test", "A")
    await asyncio.sleep(0.3)
    assert z.count("api.test", "A") == queries  # stopped means stopped


async def test_min_refresh_floors_a_zero_ttl(zone: tuple[Zone, tuple[str, int]]) -> None:
    z, server = zone
    z.set("api.test", "A", 0, "10.0.0.1")
    w = watcher(server, "api.test", Updates(), record_type="A", port=80, min_refresh=0.4)
    w.start()
    try:
        await asyncio.sleep(1.0)
    finally:
        await w.stop()
    assert 2 <= z.count("api.test", "A") <= 3  # at 0 s, 0.4 s, 0.8 s - not a tight loop


# ---------------------------------------------------------------------------------------------
# Validation and the pure core


def test_defaults_are_pinned() -> None:
    assert (DEFAULT_MIN_REFRESH, DEFAULT_MAX_REFRESH, DEFAULT_QUERY_TIMEOUT) == (5.0, 300.0, 5.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"record_type": "A"}, "port"),
        ({"record_type": "A", "port": 0}, "port"),
        ({"record_type": "auto", "port": 70000}, "port"),
        ({"record_type": "MX", "port": 80}, "record_type"),
        ({"record_type": "A", "port": 80, "min_refresh": 0}, "min_refresh"),
        ({"record_type": "A", "port": 80, "min_refresh": 5, "max_refresh": 1}, "max_refresh"),
        ({"record_type": "A", "port": 80, "query_timeout": 0}, "query_timeout"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        DnsResolverWatcher("x.test", resolver=("127.0.0.1", 53), on_update=Updates(), **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    ttl=st.one_of(st.none(), st.floats(0, 1e6)),
    failures=st.integers(0, 10_000),
    lo=st.floats(0.01, 100),
    span=st.floats(0, 1000),
)
def test_refresh_delay_stays_within_bounds(
    ttl: float | None, failures: int, lo: float, span: float
) -> None:
    hi = lo + span
    d = refresh_delay(ttl, failures, min_refresh=lo, max_refresh=hi)
    assert lo <= d <= hi
    assert refresh_delay(ttl, failures + 1, min_refresh=lo, max_refresh=hi) >= d or failures == 0
    if failures == 0 and ttl is not None and lo <= ttl <= hi:
        assert d == ttl


srv_record = st.builds(
    SrvRecord,
    priority=st.integers(0, 3),
    weight=st.integers(0, 100),
    port=st.integers(1, 65535),
    target=st.sampled_from(["a", "b", "c"]),
)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(srv_record, max_size=8))
def test_srv_endpoints_come_only_from_the_lowest_priority(records: list[SrvRecord]) -> None:
    addresses = {"a": ["10.0.0.1"], "b": ["10.0.0.2", "10.0.0.3"], "c": ["10.0.0.4"]}
    out = srv_endpoints(records, addresses)
    assert out == sorted(out)
    assert len({(h, p) for h, p, _ in out}) == len(out)
    if not records:
        assert out == []
        return
    best = min(r.priority for r in records)
    allowed = {(a, r.port) for r in records if r.priority == best for a in addresses[r.target]}
    assert {(h, p) for h, p, _ in out} == allowed
    assert all(w >= 1 for _, _, w in out)
