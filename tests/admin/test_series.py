"""SeriesKeeper: cumulative samples in, per-step rates and quantiles out."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.admin.series import SeriesKeeper, histogram_quantile

INF = math.inf


def sample(requests: float, errors: float = 0, buckets: list[list[object]] | None = None,
           kind: str = "routes", name: str = "api") -> dict[str, object]:
    stats = {"requests": requests, "errors": errors, "buckets": buckets or []}
    return {kind: {name: stats}}


def known(xs: list[float | None]) -> list[float]:
    return [x for x in xs if x is not None]


def test_first_sample_is_a_baseline_not_a_spike() -> None:
    keeper = SeriesKeeper(horizon=60, step=5)
    keeper.add(sample(1_000_000), now=100.0)
    line = keeper.view(100.0)["routes"]["api"]
    assert known(line["rps"]) == []


def test_rates_per_step_from_cumulative_counts() -> None:
    keeper = SeriesKeeper(horizon=60, step=5)
    keeper.add(sample(0), now=100.0)
    keeper.add(sample(50, 5), now=105.0)
    keeper.add(sample(150, 5), now=110.0)
    view = keeper.view(110.0)
    line = view["routes"]["api"]
    assert len(view["t"]) == 12 and len(line["rps"]) == 12
    assert line["rps"][-2:] == [10.0, 20.0]
    assert line["eps"][-2:] == [1.0, 0.0]
    assert line["err"][-2:] == [0.1, 0.0]
    assert line["rps"][:-2] == [None] * 10
    assert view["t"][-1] == -5.0 and view["t"][0] == -60.0


def test_jittered_sampling_does_not_invent_spikes() -> None:
    keeper = SeriesKeeper(horizon=60, step=5)
    times = [100.0, 104.0, 111.5, 114.9, 120.2]
    for t in times:
        keeper.add(sample(10 * t), now=t)  # exactly 10 requests/s
    assert known(keeper.view(120.2)["routes"]["api"]["rps"]) == pytest.approx([10.0] * 5)


def test_counter_reset_never_gives_negative_rates() -> None:
    keeper = SeriesKeeper(horizon=60, step=5)
    keeper.add(sample(500), now=0.0)
    keeper.add(sample(10), now=5.0)   # gateway restarted its counters
    keeper.add(sample(60), now=10.0)
    rps = known(keeper.view(10.0)["routes"]["api"]["rps"])
    assert rps == [10.0]


def test_old_slots_fall_out_of_the_window_and_silent_names_are_forgotten() -> None:
    keeper = SeriesKeeper(horizon=20, step=5)
    keeper.add(sample(0), now=0.0)
    keeper.add(sample(100), now=5.0)
    assert known(keeper.view(5.0)["routes"]["api"]["rps"]) == [20.0]
    assert known(keeper.view(30.0)["routes"]["api"]["rps"]) == []
    keeper.add({"routes": {"other": {"requests": 1, "errors": 0}}}, now=30.0)
    assert list(keeper.view(30.0)["routes"]) == ["other"]


def test_quantiles_per_step_like_histogram_quantile() -> None:
    keeper = SeriesKeeper(horizon=30, step=5)
    zero = [[0.1, 0], [0.2, 0], [1, 0], ["+Inf", 0]]
    keeper.add(sample(0, buckets=zero), now=0.0)
    keeper.add(sample(120, buckets=[[0.1, 50], [0.2, 70], [1, 110], ["+Inf", 120]]), now=5.0)
    line = keeper.view(5.0)["routes"]["api"]
    assert line["p50"][-1] == pytest.approx(0.15)
    assert line["p99"][-1] == 1.0  # rank in +Inf: highest finite bound


def test_changed_bucket_bounds_restart_the_line() -> None:
    keeper = SeriesKeeper(horizon=30, step=5)
    keeper.add(sample(0, buckets=[[1, 0], ["+Inf", 0]]), now=0.0)
    keeper.add(sample(10, buckets=[[0.5, 10], ["+Inf", 10]]), now=5.0)
    assert known(keeper.view(5.0)["routes"]["api"]["rps"]) == []


def test_upstreams_are_kept_apart_from_routes() -> None:
    keeper = SeriesKeeper(horizon=30, step=5)
    keeper.add({"routes": {"a": {"requests": 0}}, "upstreams": {"a": {"requests": 0}}}, 0.0)
    keeper.add({"routes": {"a": {"requests": 5}}, "upstreams": {"a": {"requests": 50}}}, 5.0)
    view = keeper.view(5.0)
    assert view["routes"]["a"]["rps"][-1] == 1.0
    assert view["upstreams"]["a"]["rps"][-1] == 10.0


def test_time_must_not_go_backwards_and_bad_shapes_are_named() -> None:
    keeper = SeriesKeeper(horizon=30, step=5)
    keeper.add(sample(0), now=10.0)
    with pytest.raises(ValueError, match="now must not go backwards: got 9.0"):
        keeper.add(sample(1), now=9.0)
    with pytest.raises(ValueError, match="step must be > 0 seconds, got 0"):
        SeriesKeeper(horizon=30, step=0)
    with pytest.raises(ValueError, match="horizon must be >= step"):
        SeriesKeeper(horizon=1, step=5)
    with pytest.raises(ValueError, match="slots"):
        SeriesKeeper(horizon=1e9, step=1)
    with pytest.raises(ValueError, match="bucket bound must be a number or '\\+Inf', got 'x'"):
        keeper.add(sample(1, buckets=[["x", 1]]), now=11.0)


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(0.5, [], []) is None
    assert histogram_quantile(0.5, [1.0, INF], [0, 0]) is None
    assert histogram_quantile(0.5, [1.0, INF], [10, 10]) == 0.5   # first bucket starts at 0
    assert histogram_quantile(0.5, [INF], [4]) is None             # nothing finite to answer
    assert histogram_quantile(0.0, [1.0, 2.0, INF], [0, 10, 10]) == 1.0


@st.composite
def histograms(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(1, 8))
    edges = sorted(set(draw(st.lists(st.floats(0.001, 100), min_size=n, max_size=n))))
    per = draw(st.lists(st.integers(0, 1000), min_size=len(edges) + 1,
                        max_size=len(edges) + 1))
    cum, total = [], 0.0
    for c in per:
        total += c
        cum.append(total)
    return [*edges, INF], cum


@settings(max_examples=300, deadline=None)
@given(histograms(), st.floats(0, 1), st.floats(0, 1))
def test_quantile_is_monotone_and_inside_the_bounds(
    hist: tuple[list[float], list[float]], q1: float, q2: float
) -> None:
    bounds, cum = hist
    a = histogram_quantile(min(q1, q2), bounds, cum)
    b = histogram_quantile(max(q1, q2), bounds, cum)
    if cum[-1] == 0:
        assert a is None and b is None
        return
    assert a is not None and b is not None
    assert 0.0 <= a <= b <= bounds[-2]


@settings(max_examples=300, deadline=None)
@given(histograms(), st.floats(0, 1))
def test_quantile_lies_in_the_bucket_holding_its_rank(
    hist: tuple[list[float], list[float]], q: float
) -> None:
    bounds, cum = hist
    value = histogram_quantile(q, bounds, cum)
    if value is None:
        return
    rank = q * cum[-1]
    i = next(j for j, c in enumerate(cum) if c >= rank)
    lower = 0.0 if i == 0 else bounds[i - 1]
    upper = bounds[i] if bounds[i] != INF else bounds[-2]
    assert lower - 1e-9 <= value <= upper + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.01, 12), st.integers(0, 500), st.integers(0, 500)),
             min_size=1, max_size=40),
    st.floats(0, 1000),
)
def test_every_slot_rate_lies_between_the_interval_rates(
    steps: list[tuple[float, int, int]], start: float
) -> None:
    keeper = SeriesKeeper(horizon=60, step=5)
    t, req, err = start, 0, 0
    keeper.add(sample(0, 0), now=t)
    rates: list[float] = []
    for gap, new, bad in steps:
        t += gap
        req += new
        err += min(bad, new)
        rates.append(new / gap)
        keeper.add(sample(req, err), now=t)
    line = keeper.view(t)["routes"]["api"]
    for rps, eps, ratio in zip(line["rps"], line["eps"], line["err"], strict=True):
        if rps is None:
            assert eps is None
            continue
        assert min(rates) - 1e-6 <= rps <= max(rates) + 1e-6
        assert 0 <= eps <= rps + 1e-9
        assert ratio is None or 0 <= ratio <= 1 + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 30), st.integers(-50, 500)), min_size=1, max_size=30))
def test_resets_and_gaps_never_give_negative_or_missing_time(
    steps: list[tuple[float, int]]
) -> None:
    keeper = SeriesKeeper(horizon=120, step=5)
    t, req = 0.0, 0
    keeper.add(sample(0), now=t)
    for gap, change in steps:
        t += gap
        req = max(0, req + change) if change >= 0 else 0  # a negative change is a reset to 0
        keeper.add(sample(req), now=t)
        view = keeper.view(t)
        assert len(view["t"]) == 24
        assert all(x >= 0 for x in known(view["routes"]["api"]["rps"]))


def test_repeated_views_between_samples_agree_and_follow_new_samples() -> None:
    keeper = SeriesKeeper(horizon=30, step=5)
    keeper.add(sample(0), now=0.0)
    keeper.add(sample(50), now=5.0)
    first = keeper.view(5.0)
    assert keeper.view(5.0) == first
    assert keeper.view(9.0)["routes"]["api"]["rps"][-2] == 10.0  # window moved by one slot
    keeper.add(sample(150), now=10.0)
    assert keeper.view(10.0)["routes"]["api"]["rps"][-1] == 20.0
