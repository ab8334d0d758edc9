"""The canary statistics against SciPy (an oracle in tests only; the gateway does not use it)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.canary.stats import mann_whitney_greater, quantile, two_proportion

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")

samples = st.lists(st.integers(min_value=0, max_value=40).map(lambda v: v / 10.0),
                   min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_mann_whitney_matches_scipy_asymptotic(x: list[float], y: list[float]) -> None:
    ours = mann_whitney_greater(x, y)
    assert ours is not None
    ref = scipy_stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic",
                                   use_continuity=True)
    assert ours.statistic == pytest.approx(float(ref.statistic))
    if len(set(x + y)) == 1:
        assert ours.p_value == 1.0  # no evidence at all; SciPy answers nan here
    else:
        assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-6, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.data())
def test_two_proportion_matches_reference(n1: int, n2: int, data: st.DataObject) -> None:
    e1 = data.draw(st.integers(0, n1))
    e2 = data.draw(st.integers(0, n2))
    ours = two_proportion(e1, n1, e2, n2)
    assert ours is not None
    pooled = (e1 + e2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var == 0:
        assert ours.p_value == 1.0
        return
    z = (e2 / n2 - e1 / n1) / math.sqrt(var)
    assert ours.z == pytest.approx(z)
    assert ours.p_value == pytest.approx(float(scipy_stats.norm.sf(z)), rel=1e-9, abs=1e-300)


def test_no_data_is_no_test() -> None:
    assert two_proportion(0, 0, 1, 10) is None
    assert two_proportion(1, 10, 0, 0) is None
    assert mann_whitney_greater([], [1.0]) is None
    assert mann_whitney_greater([1.0], []) is None
    assert quantile([], 0.5) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=50),
       st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.99, 1.0]))
def test_quantile_matches_numpy_linear(values: list[float], q: float) -> None:
    got = quantile(sorted(values), q)
    assert got == pytest.approx(float(np.quantile(values, q)), abs=1e-9)
