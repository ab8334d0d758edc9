"""The verified-token cache: bounded, honours each entry's window and key generation."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from edgeward.auth.tokens import TokenCache


@given(st.lists(st.tuples(st.text(max_size=3), st.floats(0, 100), st.floats(0, 100)),
                max_size=60),
       st.integers(1, 10), st.floats(0, 100))
def test_bounded_and_never_outside_the_window(puts: list[tuple[str, float, float]],
                                              size: int, now: float) -> None:
    cache: TokenCache[str] = TokenCache(size)
    windows: dict[str, tuple[float, float]] = {}
    for token, a, b in puts:
        nbf, exp = min(a, b), max(a, b)
        cache.put(token, token, nbf, exp, 1)
        if exp > nbf:
            windows[token] = (nbf, exp)
        assert len(cache) <= size
    for token, (nbf, exp) in windows.items():
        got = cache.get(token, now, 1)
        if got is not None:
            assert nbf <= now < exp


def test_a_new_key_generation_invalidates_entries() -> None:
    cache: TokenCache[str] = TokenCache(10)
    cache.put("t", "alice", -math.inf, 100.0, generation=1)
    assert cache.get("t", 50.0, 1) == "alice"
    assert cache.get("t", 50.0, 2) is None
    assert cache.get("t", 50.0, 1) is None  # dropped, not merely hidden


def test_expired_entries_are_dropped_and_the_oldest_goes_first() -> None:
    cache: TokenCache[str] = TokenCache(2)
    cache.put("a", "a", 0.0, 10.0, 0)
    cache.put("b", "b", 0.0, 10.0, 0)
    cache.put("c", "c", 0.0, 10.0, 0)
    assert cache.get("a", 1.0, 0) is None and cache.get("c", 1.0, 0) == "c"
    assert cache.get("b", 10.0, 0) is None
    assert TokenCache[str](0).max_entries == 0
    off: TokenCache[str] = TokenCache(0)
    off.put("a", "a", 0.0, 10.0, 0)
    assert len(off) == 0
