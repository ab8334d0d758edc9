"""A bounded, least-recently-used map of per-key limiter state.

Every algorithm keeps one small state per key (a client IP, a consumer...). Keys are chosen by
clients, so the map is bounded: past `max_keys` entries the least recently seen key is forgotten,
which gives that key a fresh budget the next time it shows up (the same trade nginx makes when
its limit_req zone is full: it drops the least recently used states). Forgetting a key that has
been idle longer than its refill time changes nothing, so with `max_keys` above the number of keys
active within one refill period the bound is invisible to users.

Memory: about 200 bytes per entry on CPython 3.11 (OrderedDict node, the key string and a
2-slot state list), so the default 100,000 keys cost about 20 MB per limiter.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")

# nginx's documented sizing: a 1 MB zone holds about 16,000 states and its own example zone is
# 10 MB (~160,000 states). 100,000 keeps a similar order of magnitude at ~20 MB in Python.
DEFAULT_MAX_KEYS = 100_000


class KeyMap(Generic[V]):
    """get() refreshes recency; put() inserts and evicts the least recent key when full.

    The most recently used entry is also kept aside (`_last_key`, `_last_value`): a client
    on a keep-alive connection sends its requests in runs under the same key, and for those
    get() answers without touching the OrderedDict (the entry is already the most recent, so
    there is nothing to move). Algorithms that keep a mutable state per key therefore update
    it in place and never re-insert it."""

    __slots__ = ("max_keys", "data", "evictions", "_last_key", "_last_value")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self.max_keys = max_keys
        self.data: OrderedDict[str, V] = OrderedDict()
        self.evictions = 0
        self._last_key: str | None = None  # the entry at the end of `data`, or None
        self._last_value: V | None = None

    def get(self, key: str) -> V | None:
        last = self._last_key
        if last is not None and key == last:
            return self._last_value
        data = self.data
        value = data.get(key)
        if value is not None:
            data.move_to_end(key)
            self._last_key = key
            self._last_value = value
        return value

    def put(self, key: str, value: V) -> None:
        data = self.data
        size = len(data)
        data[key] = value
        if len(data) > size:  # a new key: appended at the end
            self._last_key = key
            self._last_value = value
            if size >= self.max_keys:
                data.popitem(last=False)
                self.evictions += 1
        elif key == self._last_key:  # replaced in place: keeps its position
            self._last_value = value

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: str) -> bool:
        return key in self.data
