"""The statistics a canary judgement needs, written out (no SciPy at run time).

- `two_proportion(e_base, n_base, e_canary, n_canary)`: the pooled two-proportion z-test of
  "the canary's error rate is higher than the baseline's" (one-sided). This is what Kayenta's
  and Flagger's users mean by an error-rate comparison; the normal approximation is refused
  (None) below `min_n`, where it is not to be trusted.
- `mann_whitney_greater(canary, base)`: the Mann-Whitney U test of "canary durations tend to
  be larger" (one-sided), with average ranks for ties, the tie-corrected variance and the 0.5
  continuity correction: the asymptotic test SciPy's `mannwhitneyu(x, y,
  alternative="greater", method="asymptotic")` computes, and the one Kayenta's
  MannWhitneyClassifier applies to metric samples. No distribution is assumed, so a few slow
  outliers do not dominate as they would in a t-test.
- `quantile(sorted_values, q)`: linear interpolation between order statistics (NumPy's
  default, Hyndman-Fan type 7).

All are pure functions of their arguments; tests compare them with SciPy as an oracle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_SQRT2 = math.sqrt(2.0)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / _SQRT2)


@dataclass(frozen=True, slots=True)
class TestResult:
    statistic: float   # z for the proportions test, U for Mann-Whitney
    z: float
    p_value: float     # one-sided: the canary is worse


def two_proportion(errors_base: int, n_base: int, errors_canary: int, n_canary: int
                   ) -> TestResult | None:
    """One-sided pooled z-test that the canary's error proportion exceeds the baseline's.

    None when either arm has no request. When no arm has any error (or every request of both
    failed) the pooled variance is 0: the rates are equal, z = 0, p = 0.5 would be wrong for a
    p-value of an exact tie, so p = 1.0 is returned for "no evidence at all"."""
    if n_base <= 0 or n_canary <= 0:
        return None
    p_base = errors_base / n_base
    p_canary = errors_canary / n_canary
    pooled = (errors_base + errors_canary) / (n_base + n_canary)
    variance = pooled * (1.0 - pooled) * (1.0 / n_base + 1.0 / n_canary)
    if variance <= 0.0:
        return TestResult(0.0, 0.0, 1.0)
    z = (p_canary - p_base) / math.sqrt(variance)
    return TestResult(z, z, normal_sf(z))


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) of `values` and the tie term sum(t^3 - t) over tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    n = len(order)
    while i < n:
        j = i
        v = values[order[i]]
        while j + 1 < n and values[order[j + 1]] == v:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        t = j - i + 1
        if t > 1:
            ties += t * t * t - t
        i = j + 1
    return ranks, ties


def mann_whitney_greater(canary: Sequence[float], base: Sequence[float]) -> TestResult | None:
    """One-sided Mann-Whitney U test that `canary` values tend to exceed `base` values.

    U is the canary's U (the number of (canary, base) pairs where canary > base, ties counting
    a half). None when either sample is empty. When every value is equal, p = 1.0."""
    n1, n2 = len(canary), len(base)
    if n1 == 0 or n2 == 0:
        return None
    ranks, ties = _ranks([*canary, *base])
    r1 = math.fsum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0.0:
        return TestResult(u1, 0.0, 1.0)
    # Continuity correction toward the mean, as SciPy's use_continuity=True.
    z = (u1 - mean - 0.5) / math.sqrt(variance)
    return TestResult(u1, z, normal_sf(z))


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of already sorted values, linear interpolation; None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac
