from __future__ import annotations

import pytest

from edgeward.ratelimit.keymap import ENTRY_BYTES, KeyMap


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


def test_bytes_bound_evicts_the_least_recent_keys() -> None:
    keys: KeyMap[int] = KeyMap(max_keys=1000, max_bytes=3 * (ENTRY_BYTES + 2))
    for i, name in enumerate(["k1", "k2", "k3", "k4"]):
        keys.put(name, i)
    assert list(keys.data) == ["k2", "k3", "k4"]
    assert keys.bytes == 3 * (ENTRY_BYTES + 2) and keys.evictions == 1
    keys.put("a-much-longer-key", 9)
    assert keys.bytes <= keys.max_bytes and "a-much-longer-key" in keys
    assert keys.stats() == {"keys": len(keys), "bytes": keys.bytes, "max_keys": 1000,
                            "max_bytes": 3 * (ENTRY_BYTES + 2), "evictions": 3, "expired": 0}


def test_idle_keys_expire_two_per_insert_from_the_least_recent_end() -> None:
    keys: KeyMap[float] = KeyMap(idle=lambda until, now: until <= now)  # value: busy until
    for i in range(5):
        keys.put(f"k{i}", 10.0 + i, now=0.0)
    keys.put("n1", 100.0, now=12.5)              # k0 (10) and k1 (11) are idle, k2 (12) too,
    assert list(keys.data) == ["k2", "k3", "k4", "n1"]  # but at most two go per insert
    keys.put("n2", 100.0, now=12.5)
    assert list(keys.data) == ["k3", "k4", "n1", "n2"]  # k3 (13) is still busy: stop there
    assert keys.expired == 3 and keys.evictions == 0
    assert keys.bytes == sum(ENTRY_BYTES + len(k) for k in keys.data)


def test_the_cached_last_entry_is_dropped_with_its_key() -> None:
    keys: KeyMap[float] = KeyMap(idle=lambda until, now: until <= now)
    keys.put("a", 1.0, now=0.0)
    keys.put("b", 5.0, now=2.0)                  # expires a
    assert keys.get("a") is None and keys.get("b") == 5.0


def test_a_replaced_value_keeps_its_place_and_size() -> None:
    keys: KeyMap[int] = KeyMap(max_keys=2)
    keys.put("a", 1)
    keys.put("b", 2)
    keys.put("a", 3)
    assert list(keys.data.items()) == [("a", 3), ("b", 2)]
    assert keys.bytes == 2 * (ENTRY_BYTES + 1)


def test_max_bytes_must_hold_one_entry() -> None:
    with pytest.raises(ValueError, match="max_bytes must be >= 272"):
        KeyMap(max_bytes=100)
