from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance.endpoint import Endpoint
from edgeward.resilience.outcome import OK, TIMEOUT, Outcome
from edgeward.resilience.outlier import (
    OutlierConfig,
    OutlierDetector,
    OutlierEvent,
    ejection_cap,
    ejection_time,
)
from edgeward.structs import ConfigError, load_struct

E500 = Outcome.of_status(500)
E503 = Outcome.of_status(503)


def cluster(n: int, **kw: object) -> tuple[OutlierDetector, list[Endpoint]]:
    eps = [Endpoint("127.0.0.1", 8000 + i) for i in range(n)]
    d = OutlierDetector(OutlierConfig(**kw))  # type: ignore[arg-type]
    d.set_endpoints(eps)
    return d, eps


def fail(d: OutlierDetector, ep: Endpoint, times: int, now: float,
         outcome: Outcome = E500) -> list[OutlierEvent]:
    events: list[OutlierEvent] = []
    for _ in range(times):
        events.extend(d.record(ep, outcome, now))
    return events


def test_defaults_are_pinned() -> None:
    cfg = OutlierConfig()
    assert (cfg.consecutive_5xx, cfg.consecutive_gateway_failure) == (5, None)
    assert (cfg.success_rate_minimum_hosts, cfg.success_rate_request_volume) == (5, 100)
    assert cfg.success_rate_stdev_factor == 1.9
    assert (cfg.failure_percentage_threshold, cfg.failure_percentage_minimum_hosts,
            cfg.failure_percentage_request_volume) == (None, 5, 50)
    assert (cfg.interval, cfg.base_ejection_time, cfg.max_ejection_time) == (10.0, 30.0, 300.0)
    assert (cfg.max_ejection_percent, cfg.always_eject_one) == (10, False)


def test_yaml_and_errors() -> None:
    cfg = load_struct(OutlierConfig, {"interval": "1s", "base_ejection_time": "500ms",
                                      "max_ejection_percent": 50})
    assert (cfg.interval, cfg.base_ejection_time, cfg.max_ejection_percent) == (1.0, 0.5, 50)
    with pytest.raises(ConfigError) as err:
        load_struct(OutlierConfig, {"max_ejection_percent": 150, "consecutive_5xx": 0},
                    path="upstreams.a.outlier")
    assert "upstreams.a.outlier.max_ejection_percent: must be 0-100, got 150" in str(err.value)
    assert "outlier.consecutive_5xx: must be >= 1 or null, got 0" in str(err.value)


def test_consecutive_5xx_ejects_and_success_resets_the_run() -> None:
    d, eps = cluster(10)
    assert fail(d, eps[0], 4, 1.0) == []
    d.record(eps[0], OK, 1.0)
    assert fail(d, eps[0], 4, 1.0) == []
    (ev,) = fail(d, eps[0], 1, 1.0, TIMEOUT)
    assert (ev.kind, ev.reason, ev.until) == ("ejected", "consecutive_5xx", 31.0)
    assert eps[0].ejected and not eps[0].available
    assert d.tick(30.9) == []
    (back,) = d.tick(31.0)
    assert (back.kind, back.endpoint, back.reason) == ("unejected", eps[0], "ejection_time_elapsed")
    assert eps[0].available


def test_consecutive_gateway_failure_rule() -> None:
    d, eps = cluster(10, consecutive_5xx=None, consecutive_gateway_failure=3)
    assert fail(d, eps[1], 10, 0.0) == []  # 500 is not a gateway failure
    (ev,) = fail(d, eps[1], 3, 0.0, E503)
    assert ev.reason == "consecutive_gateway_failure"


def test_cap_is_exact_by_default_so_small_clusters_keep_all_hosts() -> None:
    # envoy#3263: 10 % of 3 hosts is 0.3 -> no ejection at all (Envoy used to eject one).
    d, eps = cluster(3)
    (ev,) = fail(d, eps[0], 5, 0.0)
    assert ev.kind == "ejection_skipped" and not eps[0].ejected
    # the run restarts after a refused ejection: no event per further failure
    assert fail(d, eps[0], 4, 0.0) == []


def test_always_eject_one_still_spares_the_last_host() -> None:
    d, eps = cluster(2, always_eject_one=True)
    assert fail(d, eps[0], 5, 0.0)[0].kind == "ejected"
    assert fail(d, eps[1], 5, 0.0)[0].kind == "ejection_skipped"
    d1, (only,) = cluster(1, always_eject_one=True, max_ejection_percent=100)
    assert fail(d1, only, 5, 0.0)[0].kind == "ejection_skipped" and only.available


def test_never_ejects_the_last_available_host() -> None:
    d, eps = cluster(2, max_ejection_percent=100)
    eps[1].healthy = False  # the health checker already took the other one out
    assert fail(d, eps[0], 5, 0.0)[0].kind == "ejection_skipped"


def test_ejection_time_grows_with_repeats_is_capped_and_decays() -> None:
    cfg = OutlierConfig(base_ejection_time=30.0, max_ejection_time=100.0)
    assert [ejection_time(cfg, k) for k in (1, 2, 3, 4, 50)] == [30.0, 60.0, 90.0, 100.0, 100.0]
    d, eps = cluster(10, base_ejection_time=30.0, max_ejection_time=100.0, interval=10.0)
    d.tick(0.0)
    now, lengths = 0.0, []
    for _ in range(5):
        (ev,) = fail(d, eps[0], 5, now)
        assert ev.until is not None
        lengths.append(ev.until - now)
        while eps[0].ejected:
            now += 10.0
            d.tick(now)
    assert lengths == [30.0, 60.0, 90.0, 100.0, 100.0]
    for _ in range(10):  # ten quiet intervals in rotation: back to the base time
        now += 10.0
        d.tick(now)
    (ev,) = fail(d, eps[0], 5, now)
    assert ev.until == now + 30.0


def test_success_rate_outlier_is_ejected_in_interval() -> None:
    d, eps = cluster(10, consecutive_5xx=None)
    d.tick(0.0)
    for i, ep in enumerate(eps):
        for k in range(100):
            bad = (i == 3 and k % 2 == 0) or (i != 3 and k == 0)
            d.record(ep, E500 if bad else OK, 1.0)
    events = d.tick(10.0)
    assert [(e.kind, e.endpoint, e.reason) for e in events] == [
        ("ejected", eps[3], "success_rate")
    ]


def test_success_rate_needs_minimum_hosts_and_volume() -> None:
    d, eps = cluster(10, consecutive_5xx=None)
    d.tick(0.0)
    for i, ep in enumerate(eps[:4]):  # only 4 hosts with volume: fewer than 5
        for k in range(100):
            d.record(ep, E500 if i == 0 and k % 2 else OK, 1.0)
    assert d.tick(10.0) == []


def test_failure_percentage_rule_ejects_worst_first_within_cap() -> None:
    d, eps = cluster(10, consecutive_5xx=None, success_rate_stdev_factor=None,
                     failure_percentage_threshold=80.0)
    d.tick(0.0)
    for i, ep in enumerate(eps):
        for k in range(50):
            d.record(ep, E500 if (i in (2, 7) and k % 10 < (9 if i == 7 else 8)) else OK, 1.0)
    events = d.tick(10.0)
    assert [(e.kind, e.endpoint) for e in events] == [
        ("ejected", eps[7]),            # 90 % failures: worst first
        ("ejection_skipped", eps[2]),   # 80 %, but 10 % of 10 hosts is 1
    ]


def test_shrinking_cluster_lifts_excess_ejections() -> None:
    d, eps = cluster(20)
    fail(d, eps[0], 5, 0.0)
    fail(d, eps[1], 5, 1.0)
    assert eps[0].ejected and eps[1].ejected
    events = d.set_endpoints(eps[:10], now=2.0)  # cap drops from 2 to 1
    assert [(e.kind, e.endpoint, e.reason) for e in events] == [
        ("unejected", eps[0], "cluster_shrunk")
    ]
    assert eps[1].ejected and d.ejected() == [eps[1]]


def test_kept_address_keeps_its_ejection_across_reload() -> None:
    d, eps = cluster(20)
    fail(d, eps[0], 5, 0.0)
    fresh = Endpoint("127.0.0.1", 8000)
    d.set_endpoints([fresh, *eps[1:]])
    assert fresh.ejected
    assert d.record(Endpoint("127.0.0.1", 1), E500, 0.0) == ()  # unknown: ignored


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=12),
    pct=st.one_of(st.integers(min_value=0, max_value=100), st.sampled_from([50, 75, 100])),
    one=st.booleans(),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=11), st.booleans(),
                  st.floats(min_value=0.0, max_value=5.0)),
        max_size=300,
    ),
)
def test_ejections_never_exceed_cap_nor_take_the_last_host(
    n: int, pct: int, one: bool, steps: list[tuple[int, bool, float]]
) -> None:
    d, eps = cluster(n, consecutive_5xx=2, max_ejection_percent=pct, always_eject_one=one,
                     interval=3.0, base_ejection_time=4.0, max_ejection_time=12.0,
                     success_rate_minimum_hosts=1, success_rate_request_volume=2,
                     failure_percentage_threshold=50.0, failure_percentage_minimum_hosts=1,
                     failure_percentage_request_volume=2)
    limit = n * pct // 100
    if one:
        limit = max(limit, 1)
    limit = min(limit, n - 1)
    assert ejection_cap(d.cfg, n) == limit
    now = 0.0
    members = list(eps)
    for idx, bad, dt in steps:
        now += dt
        if idx >= 10 and not bad:  # discovery update: the cluster shrinks or grows back
            members = eps[: max(1, len(members) // 2)] if len(members) == n else list(eps)
            d.set_endpoints(members, now)
            continue
        ep = members[idx % len(members)]
        for ev in [*d.record(ep, E500 if bad else OK, now), *d.tick(now)]:
            if ev.kind == "ejected":  # ejection time within [base, max]
                assert ev.until is not None and 4.0 - 1e-9 <= ev.until - now <= 12.0 + 1e-9
        ejected = sum(e.ejected for e in members)
        assert ejected <= ejection_cap(d.cfg, len(members)) <= max(0, len(members) - 1)
        assert len(d.ejected()) == ejected
        assert any(e.available for e in members)
