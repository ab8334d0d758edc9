"""The cached `Date` value (`edgeward.http.date`): IMF-fixdate, one per second."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from hypothesis import given
from hypothesis import strategies as st

from edgeward.http.date import DateCache, http_date


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_the_value_is_the_imf_fixdate_of_the_second(now: float) -> None:
    value = DateCache().at(now).decode()
    assert value.endswith(" GMT") and len(value) == 29
    assert parsedate_to_datetime(value).timestamp() == int(now)


def test_the_value_is_made_once_per_second_and_changes_with_it() -> None:
    cache = DateCache()
    first = cache.at(1_800_000_000.1)
    assert cache.at(1_800_000_000.9) is first
    assert cache.at(1_800_000_001.0) == b"Fri, 15 Jan 2027 08:00:01 GMT"
    assert parsedate_to_datetime(http_date().decode()).year >= 2024
