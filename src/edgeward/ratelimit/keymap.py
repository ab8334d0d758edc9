"""A bounded, least-recently-used map of per-key limiter state, bounded in entries and bytes.

Every algorithm keeps one small state per key (a client IP, a consumer...). Keys are chosen by
clients, so the map is bounded three ways:

- Bytes: each entry is accounted as ENTRY_BYTES plus the characters of its key; past
  `max_bytes` the least recently seen keys are forgotten (nginx sizes `limit_req` zones in
  bytes the same way and drops the least recently used states when a zone is full). Keys are
  short and of bounded length (ratelimit/keys.py hashes client-chosen values to 32 hex
  characters), so the accounting is close to what CPython really holds.
- Entries: past `max_keys` the least recently seen key is forgotten too.
- Idleness: an algorithm may pass `idle(state, now)`, true when a state says nothing a fresh
  one would not (its bucket is full again). Each insertion of a new key first drops up to
  EXPIRE_PER_INSERT such states from the least recent end, as nginx's limit_req expires up to
  two idle nodes per new one. So the table follows the keys active lately, not every key
  ever seen, without a timer.

Forgetting a key only ever gives it a fresh budget the next time it shows up; with the bounds
above the number of keys active within one refill period, they are invisible to users.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar

V = TypeVar("V")

# nginx's documented sizing: a 1 MB zone holds about 16,000 states and its own example zone is
# 10 MB (~160,000 states). 100,000 keeps a similar order of magnitude at ~30 MB in Python.
DEFAULT_MAX_KEYS: Final = 100_000
# 32 MiB: the 100,000 keys of DEFAULT_MAX_KEYS at ~300 bytes each (a 34-character key and
# its state) fit; a table of long keys can no longer grow past it.
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
# What one entry costs besides its key's characters, measured on CPython 3.11 (tracemalloc
# over 100,000 entries): the OrderedDict slot and link node, the key's string header and the
# state (GCRA ~155 bytes, token bucket / sliding window ~220), rounded up.
ENTRY_BYTES: Final = 272
# nginx ngx_http_limit_req_expire: at most two idle nodes are freed per new one.
EXPIRE_PER_INSERT: Final = 2

Idle = Callable[[V, float], bool]


class KeyMap(Generic[V]):
    """get() refreshes recency; put() inserts, expires idle keys and evicts over the bounds.

    The most recently used entry is also kept aside (`_last_key`, `_last_value`): a client
    on a keep-alive connection sends its requests in runs under the same key, and for those
    get() answers without touching the OrderedDict (the entry is already the most recent, so
    there is nothing to move). Algorithms that keep a mutable state per key therefore update
    it in place and never re-insert it."""

    __slots__ = ("max_keys", "max_bytes", "data", "bytes", "evictions", "expired", "_idle",
                 "_last_key", "_last_value")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, max_bytes: int = DEFAULT_MAX_BYTES,
                 idle: Idle[V] | None = None) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        if max_bytes < ENTRY_BYTES:
            raise ValueError(f"max_bytes must be >= {ENTRY_BYTES} (one entry), got {max_bytes}")
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.data: OrderedDict[str, V] = OrderedDict()
        self.bytes = 0           # accounted size of the entries held
        self.evictions = 0       # keys forgotten because a bound was reached
        self.expired = 0         # idle keys forgotten
        self._idle = idle
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

    def put(self, key: str, value: V, now: float = 0.0) -> None:
        """Insert or replace `key`; `now` is what `idle` states are judged against."""
        data = self.data
        if key in data:  # replaced in place: keeps its position and size
            data[key] = value
            if key == self._last_key:
                self._last_value = value
            return
        idle = self._idle
        if idle is not None:
            self._expire(idle, now)
        data[key] = value
        self.bytes += ENTRY_BYTES + len(key)
        self._last_key = key
        self._last_value = value
        while len(data) > 1 and (len(data) > self.max_keys or self.bytes > self.max_bytes):
            self._pop_oldest()
            self.evictions += 1

    def _expire(self, idle: Idle[V], now: float) -> None:
        data = self.data
        for _ in range(EXPIRE_PER_INSERT):
            if not data:
                return
            oldest = next(iter(data))
            if not idle(data[oldest], now):
                return
            self._pop_oldest()
            self.expired += 1

    def _pop_oldest(self) -> None:
        key, _ = self.data.popitem(last=False)
        self.bytes -= ENTRY_BYTES + len(key)
        if key == self._last_key:
            self._last_key = None
            self._last_value = None

    def stats(self) -> dict[str, int]:
        """What the admin API shows: size against the bounds, and what was forgotten."""
        return {"keys": len(self.data), "bytes": self.bytes, "max_keys": self.max_keys,
                "max_bytes": self.max_bytes, "evictions": self.evictions,
                "expired": self.expired}

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: str) -> bool:
        return key in self.data
