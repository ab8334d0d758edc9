"""values.py: durations in their compound form, and rendering them back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.values import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("1m30s", 90.0), ("1h2m3.5s", 3723.5), ("2h", 7200.0), ("1s500ms", 1.5),
    ("1m 30s", 90.0), ("1h30m", 5400.0), ("3ms250us", 0.00325), ("0s", 0.0),
])
def test_compound_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30s1m", "1s1s", "1m30", "m30s", "1h-2m", "1.5.5s", "1d"])
def test_compound_durations_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        parse_duration(bad)


@pytest.mark.parametrize(("seconds", "text"), [
    (90.0, "1m30s"), (0.25, "250ms"), (3723.5, "1h2m3.5s"), (0.0, "0s"), (3600.0, "1h"),
    (1.5, "1.5s"), (0.0015, "1.5ms"), (0.000007, "7us"), (60.0, "1m"), (5.0, "5s"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**13))
def test_a_rendered_duration_parses_back_to_the_same_value(us: int) -> None:
    seconds = us / 10**6
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=59),
       st.integers(min_value=0, max_value=59_999))
def test_parts_add_up(hours: int, minutes: int, ms: int) -> None:
    text = f"{hours}h{minutes}m{ms}ms"
    assert parse_duration(text) == (hours * 3600_000 + minutes * 60_000 + ms) / 1000
