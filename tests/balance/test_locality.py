"""Zone-aware routing plans and label subsets (sans-I/O)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance import BalancerOptions, Endpoint, make_balancer
from edgeward.balance.locality import (
    SubsetIndex,
    ZonePlan,
    ZoneRouter,
    plan_zones,
    selector_of,
)

ZONES = ("a", "b", "c")


def fleet(spec: list[tuple[str, int, bool]]) -> list[Endpoint]:
    out = []
    for i, (zone, weight, up) in enumerate(spec):
        e = Endpoint(f"10.0.{i // 250}.{i % 250 + 1}", 8000, weight, zone)
        e.healthy = up
        out.append(e)
    return out


members = st.lists(st.tuples(st.sampled_from(ZONES), st.integers(1, 5), st.booleans()),
                   min_size=1, max_size=30)


def zone_load(plan: ZonePlan | None, local: str) -> dict[str, float]:
    """Share of a gateway's requests each zone gets (None plan: by available weight)."""
    if plan is None:
        raise AssertionError("plan expected")
    load = {local: plan.local}
    previous = 0.0
    for zone, cum in zip(plan.spill, plan.cumulative, strict=True):
        load[zone] = (1 - plan.local) * (cum - previous) / plan.cumulative[-1]
        previous = cum
    return load


@settings(max_examples=300, deadline=None)
@given(members)
def test_a_fleet_spread_like_the_capacity_loads_each_zone_by_its_healthy_share(
        spec: list[tuple[str, int, bool]]) -> None:
    eps = fleet(spec)
    total = sum(e.weight for e in eps)
    healthy = sum(e.weight for e in eps if e.available)
    zones = {e.zone for e in eps}
    plans = {z: plan_zones(z, eps, 0, panic=False) for z in zones}
    if any(p is None for p in plans.values()):
        # Off only when the zone has nothing available (Envoy: no local hosts -> no routing).
        for z, p in plans.items():
            if p is None:
                assert not any(e.available for e in eps if e.zone == z)
        return
    # Gateways sit in each zone in proportion to the zone's total weight (the assumption in
    # the module note); then every zone gets exactly its share of the healthy weight.
    aggregate: Counter[str] = Counter()
    for z, plan in plans.items():
        expected = sum(e.weight for e in eps if e.zone == z) / total
        for target, share in zone_load(plan, z).items():
            aggregate[target] += expected * share
    for z in zones:
        want = sum(e.weight for e in eps if e.zone == z and e.available) / healthy
        assert aggregate[z] == pytest.approx(want, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(members, st.sampled_from(ZONES))
def test_the_plan_stays_local_while_the_local_share_suffices_and_spills_only_to_surplus(
        spec: list[tuple[str, int, bool]], local: str) -> None:
    eps = fleet(spec)
    plan = plan_zones(local, eps, 0, panic=False)
    if plan is None:
        return
    total = sum(e.weight for e in eps)
    healthy = sum(e.weight for e in eps if e.available)
    expected = sum(e.weight for e in eps if e.zone == local) / total
    have = sum(e.weight for e in eps if e.zone == local and e.available) / healthy
    if have >= expected:
        assert plan == ZonePlan(1.0)
    else:
        assert plan.local == pytest.approx(have / expected)
        for zone in plan.spill:
            surplus = (sum(e.weight for e in eps if e.zone == zone and e.available) / healthy
                       - sum(e.weight for e in eps if e.zone == zone) / total)
            assert zone != local and surplus > 0


def test_zone_routing_is_off_below_min_cluster_size_in_panic_and_without_a_zone() -> None:
    eps = fleet([("a", 1, True)] * 3 + [("b", 1, True)] * 3)
    assert plan_zones("a", eps, 6, panic=False) == ZonePlan(1.0)
    assert plan_zones("a", eps, 7, panic=False) is None
    assert plan_zones("a", eps, 0, panic=True) is None
    assert plan_zones("", eps, 0, panic=False) is None
    assert plan_zones("z", eps, 0, panic=False) is None


@settings(max_examples=100, deadline=None)
@given(members, st.sampled_from(ZONES), st.sampled_from(["round_robin", "least_request",
                                                           "maglev", "peak_ewma"]),
       st.integers(0, 2**32))
def test_router_picks_only_available_endpoints_of_a_planned_zone(
        spec: list[tuple[str, int, bool]], local: str, kind: str, seed: int) -> None:
    eps = fleet(spec)
    options = BalancerOptions(balance=kind)  # type: ignore[arg-type]
    rng = random.Random(seed)
    everything = make_balancer(options, eps, rng)
    router = ZoneRouter(local, options, rng, min_cluster_size=0)
    router.set_endpoints(eps, everything.panicking)
    plan = router.plan
    for _ in range(20):
        e = router.pick(seed & 0xFFFF, 0.0, everything)
        if plan is None:
            continue
        assert e is not None and e.available
        assert e.zone == local or e.zone in plan.spill


def test_a_zone_losing_endpoints_spills_in_proportion_and_comes_back() -> None:
    # a: 4, b: 4, c: 4 endpoints; two of a's go down.
    eps = fleet([(z, 1, True) for z in ZONES for _ in range(4)])
    options = BalancerOptions()
    rng = random.Random(3)
    everything = make_balancer(options, eps, rng)
    router = ZoneRouter("a", options, rng)
    router.set_endpoints(eps, everything.panicking)
    assert {router.pick(None, 0.0, everything).zone for _ in range(50)} == {"a"}  # type: ignore[union-attr]
    for e in eps[:2]:
        e.healthy = False
    everything.refresh()
    router.refresh(everything.panicking)
    # a has 2 of 10 healthy (0.2) against 4 of 12 expected (1/3): 60 % local, 20 % b, 20 % c.
    assert router.plan is not None and router.plan.local == pytest.approx(0.6)
    seen = Counter(router.pick(None, 0.0, everything).zone  # type: ignore[union-attr]
                   for _ in range(4000))
    assert 0.55 < seen["a"] / 4000 < 0.65
    assert abs(seen["b"] - seen["c"]) < 0.1 * 4000
    for e in eps[:2]:
        e.healthy = True
    router.refresh(everything.panicking)
    assert router.plan == ZonePlan(1.0)


def test_routing_enabled_sends_the_rest_through_the_whole_upstream() -> None:
    eps = fleet([(z, 1, True) for z in ZONES for _ in range(2)])
    options = BalancerOptions()
    rng = random.Random(5)
    everything = make_balancer(options, eps, rng)
    router = ZoneRouter("a", options, rng, min_cluster_size=0, routing_enabled=0.0)
    router.set_endpoints(eps, everything.panicking)
    assert {router.pick(None, 0.0, everything).zone for _ in range(60)} == set(ZONES)  # type: ignore[union-attr]


labels = st.dictionaries(st.sampled_from(["class", "sla"]), st.sampled_from(["iot", "gold", "x"]),
                         max_size=2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(labels, st.booleans()), min_size=1, max_size=20), labels)
def test_subsets_pick_only_matching_available_endpoints(
        spec: list[tuple[dict[str, str], bool]], wanted: dict[str, str]) -> None:
    eps = []
    for i, (lab, up) in enumerate(spec):
        e = Endpoint(f"10.1.0.{i + 1}", 80, labels=lab)
        e.healthy = up
        eps.append(e)
    index = SubsetIndex(BalancerOptions(panic_threshold=0.0), random.Random(1))
    index.set_endpoints(eps)
    selector = selector_of(wanted)
    b = index.balancer(selector)
    assert index.balancer(selector) is b  # built once, then a lookup
    matching = [e for e in eps if all(e.labels.get(k) == v for k, v in wanted.items())]
    picked = {b.pick(None, 0.0) for _ in range(2 * len(eps))}
    if not any(e.available for e in matching):
        assert picked == {None}
    else:
        assert picked <= {e for e in matching if e.available}
    # Membership changes reach the subsets already built.
    index.set_endpoints(eps[:1])
    assert set(b.endpoints) <= set(eps[:1])


UPSTREAM = """\
listen: 127.0.0.1:8080
upstreams:
  u:
    UPSTREAM
routes:
  - {match: {path_prefix: /}, upstream: u}
"""


@pytest.mark.parametrize(("lines", "path", "reason"), [
    ("targets: [{address: 10.0.0.1:80, zone: a, colour: red}]", "upstreams.u.targets[0]", ""),
    ("targets: [10.0.0.1:80]\n    zones: {10.0.0.2:80: a}", "upstreams.u.zones.10.0.0.2:80",
     "not one of targets"),
    ("targets: [10.0.0.1:80]\n    zone_aware: {routing_enabled: 120}",
     "upstreams.u.zone_aware.routing_enabled", "percentage"),
    ("targets: [10.0.0.1:80]\n    zone_aware: {min_cluster_size: -1}",
     "upstreams.u.zone_aware.min_cluster_size", "0 or more"),
])
def test_locality_config_errors_name_the_key(lines: str, path: str, reason: str) -> None:
    from edgeward.config.text import load_text
    from edgeward.structs import ConfigError

    with pytest.raises(ConfigError) as info:
        load_text(UPSTREAM.replace("UPSTREAM", lines), "gw.yaml")
    text = str(info.value)
    assert path in text and reason in text, text


def test_target_mappings_fill_zones_labels_and_weights() -> None:
    from edgeward.config.text import load_text

    cfg = load_text(UPSTREAM.replace(
        "UPSTREAM", "targets: [{address: 10.0.0.1:80, zone: a, labels: {class: iot}, "
                    "weight: 3}, 10.0.0.2:80]"), "gw.yaml")
    up = cfg.upstreams["u"]
    assert up.targets == [("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert up.zones == {"10.0.0.1:80": "a"}
    assert up.labels == {"10.0.0.1:80": {"class": "iot"}}
    assert up.weights == {"10.0.0.1:80": 3}


def test_the_gateway_zone_comes_from_server_zone_then_edgeward_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeward.compose import gateway_zone
    from edgeward.config.text import load_text

    plain = load_text(UPSTREAM.replace("UPSTREAM", "targets: [10.0.0.1:80]"), "gw.yaml")
    zoned = load_text("server: {zone: a}\n" + UPSTREAM.replace(
        "UPSTREAM", "targets: [10.0.0.1:80]"), "gw.yaml")
    monkeypatch.delenv("EDGEWARD_ZONE", raising=False)
    assert gateway_zone(plain) == "" and gateway_zone(zoned) == "a"
    monkeypatch.setenv("EDGEWARD_ZONE", "b")
    assert gateway_zone(plain) == "b" and gateway_zone(zoned) == "a"
