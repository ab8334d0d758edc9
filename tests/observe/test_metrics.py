"""Registry, children, text exposition (parsed back by an independent parser) and merging."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.observe.metrics import (
    DEFAULT_BUCKETS,
    OVERFLOW_VALUE,
    Registry,
    merge,
    render_openmetrics,
    render_snapshot,
    wants_openmetrics,
)

sys.path.insert(0, os.path.dirname(__file__))
from promtext import parse_exposition  # noqa: E402


def test_counter_and_gauge_render_and_parse_back() -> None:
    reg = Registry()
    c = reg.counter("edgeward_x_total", "Things done.", ["route", "code"])
    c.labels("orders", "200").inc()
    c.labels("orders", "200").inc(2.5)
    c.labels("users", "503").inc()
    g = reg.gauge("edgeward_open", "Open things.")
    g.labels().set(7)
    g.labels().dec(2)
    helps, types, samples = parse_exposition(reg.render())
    assert types == {"edgeward_x_total": "counter", "edgeward_open": "gauge"}
    assert helps["edgeward_x_total"] == "Things done."
    assert samples[("edgeward_x_total", (("code", "200"), ("route", "orders")))] == 3.5
    assert samples[("edgeward_x_total", (("code", "503"), ("route", "users")))] == 1
    assert samples[("edgeward_open", ())] == 5


def test_children_are_cached_by_label_values() -> None:
    reg = Registry()
    c = reg.counter("a_total", "a", ["k"])
    assert c.labels("x") is c.labels("x")
    assert c.labels("x") is not c.labels("y")


def test_wrong_label_count_names_the_metric() -> None:
    reg = Registry()
    c = reg.counter("a_total", "a", ["route", "code"])
    with pytest.raises(ValueError, match="a_total takes 2 label values"):
        c.labels("only-one")


def test_counter_refuses_to_go_down() -> None:
    child = Registry().counter("a_total", "a").labels()
    with pytest.raises(ValueError, match="-1"):
        child.inc(-1)


@pytest.mark.parametrize("name", ["1abc", "a-b", "", "a b"])
def test_invalid_metric_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid Prometheus name"):
        Registry().counter(name, "h")


def test_invalid_and_reserved_label_names_are_refused() -> None:
    with pytest.raises(ValueError, match="label name"):
        Registry().counter("a_total", "h", ["__name"])
    with pytest.raises(ValueError, match="'le'"):
        Registry().histogram("h_seconds", "h", ["le"])
    with pytest.raises(ValueError, match="repeat"):
        Registry().counter("a_total", "h", ["x", "x"])


def test_duplicate_family_is_refused() -> None:
    reg = Registry()
    reg.counter("a_total", "a")
    with pytest.raises(ValueError, match="already registered"):
        reg.gauge("a_total", "a")


def test_escaping_of_label_values_and_help() -> None:
    reg = Registry()
    nasty = 'back\\slash "quoted"\nnewline {braces}, comma=eq'
    reg.counter("esc_total", "line one\nline two \\ done", ["v"]).labels(nasty).inc()
    text = reg.render()
    assert "\nline two" not in text  # newline escaped, not raw
    helps, _, samples = parse_exposition(text)
    assert helps["esc_total"] == "line one\nline two \\ done"
    assert samples[("esc_total", (("v", nasty),))] == 1


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    reg = Registry()
    h = reg.histogram("d_seconds", "d", ["route"], buckets=[0.1, 1.0, 10.0])
    child = h.labels("r")
    for v in (0.05, 0.1, 0.5, 1.0, 5.0, 50.0):
        child.observe(v)
    _, types, samples = parse_exposition(reg.render())
    assert types["d_seconds"] == "histogram"

    def bucket(le: str) -> float:
        return samples[("d_seconds_bucket", (("le", le), ("route", "r")))]

    # le is inclusive: 0.1 counts in the 0.1 bucket, 1.0 in the 1.0 bucket
    assert [bucket("0.1"), bucket("1.0"), bucket("10.0"), bucket("+Inf")] == [2, 4, 5, 6]
    assert samples[("d_seconds_count", (("route", "r"),))] == 6
    assert samples[("d_seconds_sum", (("route", "r"),))] == pytest.approx(56.65)


def test_default_buckets_span_half_a_millisecond_to_thirty_seconds() -> None:
    assert DEFAULT_BUCKETS[0] == 0.0005 and DEFAULT_BUCKETS[-1] == 30.0
    assert list(DEFAULT_BUCKETS) == sorted(set(DEFAULT_BUCKETS))
    reg = Registry()
    reg.histogram("d_seconds", "d").labels().observe(0.0003)
    _, _, samples = parse_exposition(reg.render())
    assert samples[("d_seconds_bucket", (("le", "0.0005"),))] == 1


def test_unsorted_buckets_are_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Registry().histogram("d_seconds", "d", buckets=[1.0, 0.5])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_histogram_counts_match_a_direct_count(values: list[float]) -> None:
    reg = Registry()
    child = reg.histogram("d_seconds", "d", buckets=DEFAULT_BUCKETS).labels()
    for v in values:
        child.observe(v)
    _, _, samples = parse_exposition(reg.render())
    for bound in DEFAULT_BUCKETS:
        le = repr(float(bound))
        expected = sum(1 for v in values if v <= bound)
        assert samples[("d_seconds_bucket", (("le", le),))] == expected
    assert samples[("d_seconds_bucket", (("le", "+Inf"),))] == len(values)
    assert samples[("d_seconds_sum", ())] == pytest.approx(sum(values))


def test_callback_gauge_is_read_at_scrape_time() -> None:
    reg = Registry()
    box = {"n": 1.0}
    reg.gauge("q_depth", "depth").labels().set_function(lambda: box["n"])
    assert parse_exposition(reg.render())[2][("q_depth", ())] == 1
    box["n"] = 42
    assert parse_exposition(reg.render())[2][("q_depth", ())] == 42


def test_special_float_values_render() -> None:
    reg = Registry()
    g = reg.gauge("g", "g", ["k"])
    g.labels("inf").set(math.inf)
    g.labels("nan").set(math.nan)
    g.labels("small").set(1e-9)
    samples = parse_exposition(reg.render())[2]
    assert samples[("g", (("k", "inf"),))] == math.inf
    assert math.isnan(samples[("g", (("k", "nan"),))])
    assert samples[("g", (("k", "small"),))] == 1e-9


def test_max_children_sends_new_label_sets_to_overflow() -> None:
    reg = Registry()
    c = reg.counter("r_total", "r", ["route", "code"], max_children=3)
    for i in range(3):
        c.labels(f"r{i}", "200").inc()
    c.labels("r9", "200").inc()
    c.labels("r10", "500").inc(2)
    c.labels("r0", "200").inc()  # existing label sets keep working
    samples = parse_exposition(reg.render())[2]
    overflow = ("r_total", (("code", OVERFLOW_VALUE), ("route", OVERFLOW_VALUE)))
    assert samples[overflow] == 3
    assert samples[("r_total", (("code", "200"), ("route", "r0")))] == 2
    assert c.overflowed == 2
    assert len(samples) == 4  # 3 allowed + 1 overflow child (overflow may exceed the cap by 1)


def test_remove_forgets_a_label_set() -> None:
    reg = Registry()
    g = reg.gauge("h", "h", ["endpoint"])
    g.labels("a").set(1)
    g.labels("b").set(1)
    g.remove("a")
    samples = parse_exposition(reg.render())[2]
    assert list(samples) == [("h", (("endpoint", "b"),))]


def _worker(requests: int, active: float, durations: list[float], stamp: float) -> Registry:
    reg = Registry()
    reg.counter("req_total", "r", ["route"]).labels("orders").inc(requests)
    reg.gauge("active", "a").labels().set(active)
    reg.gauge("peak", "p", aggregate="max").labels().set(active)
    reg.gauge("stamp", "s", aggregate="last").labels().set(stamp)
    h = reg.histogram("d_seconds", "d", buckets=[0.1, 1.0])
    for d in durations:
        h.labels().observe(d)
    return reg


def test_merge_sums_counters_histograms_and_gauges_and_honours_max_last() -> None:
    a = _worker(10, 3, [0.05, 2.0], stamp=100.0)
    b = _worker(5, 4, [0.5], stamp=200.0)
    merged = merge([a.snapshot(), json.loads(json.dumps(b.snapshot()))])  # JSON round trip
    samples = parse_exposition(render_snapshot(merged))[2]
    assert samples[("req_total", (("route", "orders"),))] == 15
    assert samples[("active", ())] == 7
    assert samples[("peak", ())] == 4
    assert samples[("stamp", ())] == 200
    assert samples[("d_seconds_bucket", (("le", "0.1"),))] == 1
    assert samples[("d_seconds_bucket", (("le", "1.0"),))] == 2
    assert samples[("d_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("d_seconds_count", ())] == 3
    assert samples[("d_seconds_sum", ())] == pytest.approx(2.55)


def test_merge_refuses_mismatched_buckets() -> None:
    a = Registry()
    a.histogram("d_seconds", "d", buckets=[1.0])
    b = Registry()
    b.histogram("d_seconds", "d", buckets=[2.0])
    with pytest.raises(ValueError, match="d_seconds differs"):
        merge([a.snapshot(), b.snapshot()])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.integers(min_value=0, max_value=1000)), max_size=6))
def test_merge_of_counters_equals_per_label_sums(workers: list[dict[str, int]]) -> None:
    snaps = []
    for counts in workers:
        reg = Registry()
        fam = reg.counter("n_total", "n", ["k"])
        for k, v in counts.items():
            fam.labels(k).inc(v)
        snaps.append(reg.snapshot())
    samples = parse_exposition(render_snapshot(merge(snaps)))[2] if snaps else {}
    for k in "abc":
        present = [w[k] for w in workers if k in w]
        if present:
            assert samples[("n_total", (("k", k),))] == sum(present)
        else:
            assert ("n_total", (("k", k),)) not in samples


def _everything() -> Registry:
    """A registry with every kind of family, awkward label values and special floats."""
    reg = Registry()
    reg.counter("app_requests_total", "Requests\nby route \\ code.", ("route",)).labels(
        'we"ird\\ro\nute').inc(3)
    reg.counter("app_cpu_seconds_total", "CPU.").labels().inc(1.25)
    reg.gauge("app_temperature", "Now.", ("room",)).labels("a").set(-math.inf)
    reg.gauge("app_build_info", "Always 1.", ("version",)).labels("1.2").set(1)
    reg.gauge("app_maybe_info", "Not always 1: stays a gauge.").labels().set(2)
    hist = reg.histogram("app_latency_seconds", "Latency.", ("route",), buckets=(0.1, 1, 5))
    for v in (0.05, 0.1, 0.7, 9.0):
        hist.labels("r").observe(v)
    return reg


def test_openmetrics_parses_with_prometheus_client_and_carries_the_same_samples() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    reg = _everything()
    text = render_openmetrics(reg.snapshot())
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    kinds = {name: f.type for name, f in families.items()}
    assert kinds == {"app_requests": "counter", "app_cpu_seconds": "counter",
                     "app_temperature": "gauge", "app_build": "info",
                     "app_maybe_info": "gauge", "app_latency_seconds": "histogram"}
    (req,) = families["app_requests"].samples
    assert (req.name, req.labels, req.value) == (
        "app_requests_total", {"route": 'we"ird\\ro\nute'}, 3)
    assert families["app_requests"].documentation == "Requests\nby route \\ code."
    assert families["app_build"].samples[0].labels == {"version": "1.2"}
    assert families["app_temperature"].samples[0].value == -math.inf
    buckets = [(s.labels["le"], s.value) for s in families["app_latency_seconds"].samples
               if s.name.endswith("_bucket")]
    assert buckets == [("0.1", 2), ("1.0", 3), ("5.0", 3), ("+Inf", 4)]
    # The 0.0.4 text of the same registry has the same samples.
    plain = parse_exposition(render_snapshot(reg.snapshot()))[2]
    om = {(s.name, tuple(sorted(s.labels.items()))): s.value
          for f in families.values() for s in f.samples}
    assert om == plain


@pytest.mark.parametrize(("accept", "wanted"), [
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True),   # Prometheus 2.x/3.x
    ("Application/OpenMetrics-Text; version=1.0.0", True),
    ("text/plain;q=0.9, application/openmetrics-text;q=0.9", True),
    ("", False), ("*/*", False), ("text/plain", False), ("text/plain;version=0.0.4", False),
    ("application/openmetrics-text;q=0", False),
    ("application/openmetrics-text;q=0.4,text/plain;q=0.5", False),
    ("application/openmetrics-text;q=oops", False),
])
def test_openmetrics_is_served_only_when_asked_for_first(accept: str, wanted: bool) -> None:
    assert wants_openmetrics(accept) is wanted


@given(st.text(max_size=80))
def test_any_accept_header_is_decided_without_error(accept: str) -> None:
    assert wants_openmetrics(accept) in (True, False)
