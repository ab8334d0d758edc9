from __future__ import annotations

import pytest

from edgeward.ratelimit.keymap import KeyMap


def test_least_recently_used_key_is_evicted_first() -> None:
    keys: KeyMap[int] = KeyMap(max_keys=2)
    keys.put("a", 1)
    keys.put("b", 2)
    assert keys.get("a") == 1          # a is now the most recent
    keys.put("c", 3)
    assert "b" not in keys and "a" in keys and "c" in keys
    assert (len(keys), keys.evictions) == (2, 1)


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys must be >= 1, got 0"):
        KeyMap(0)
