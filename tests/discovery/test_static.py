from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.discovery.static import static_endpoints


def test_targets_become_weight_one_tuples_in_order() -> None:
    assert static_endpoints(["10.0.0.2:8000", "10.0.0.1:8000", "[::1]:80", "api.local:443"]) == [
        ("10.0.0.2", 8000, 1), ("10.0.0.1", 8000, 1), ("::1", 80, 1), ("api.local", 443, 1)]
    assert static_endpoints([]) == []


@pytest.mark.parametrize("bad", ["10.0.0.1", "10.0.0.1:0", ":80", "10.0.0.1:80 weight=3"])
def test_bad_target_is_named_with_its_index(bad: str) -> None:
    with pytest.raises(ValueError, match=r"targets\[1\]"):
        static_endpoints(["10.0.0.9:80", bad])


def test_duplicate_target_is_refused() -> None:
    with pytest.raises(ValueError, match=r"targets\[1\]: duplicate"):
        static_endpoints(["10.0.0.1:80", "10.0.0.1:80"])


@settings(max_examples=200, deadline=None)
@given(st.sets(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
                         st.integers(1, 65535)), max_size=8))
def test_round_trip(pairs: set[tuple[str, int]]) -> None:
    targets = [f"{h}:{p}" for h, p in sorted(pairs)]
    assert static_endpoints(targets) == [(h, p, 1) for h, p in sorted(pairs)]
