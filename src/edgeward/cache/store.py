"""The in-process tier: stored responses in an LRU bounded in bytes, with the indexes purges
need. Sans-I/O: no clock, no tasks; the filter and the fleet reader call it.

Keys (see edgeward.cache.key): an entry's `key` is its `primary` key plus the values of the
fields its response's Vary names; the primary key starts with the `base` (host, path and the
selected query: what purges name). `vary` remembers, per primary key, the fields the latest
stored response varies on, so a lookup knows which request fields pick the variant.
Purges remove every variant of a base (exact), of every base with a prefix, or every entry
carrying a tag (`Cache-Tag` / `Surrogate-Key`). Size counts body, fields and a fixed
overhead per entry; the least recently used entries go first when a new one needs room.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from edgeward.cache.policy import Freshness
from edgeward.http.fields import write_fields
from edgeward.http.h1.wire import framing_line

# What an entry costs beyond its body and fields (objects, index slots): counted so that
# many tiny entries cannot exceed the bound by much (nginx counts a fixed 128-byte node per
# key in keys_zone in the same spirit).
ENTRY_OVERHEAD: Final = 256


class Entry:
    """One stored response: what a hit replies with, and what freshness needs."""

    __slots__ = ("key", "primary", "base", "status", "fields", "body", "size", "fresh",
                 "stored_at", "etag", "last_modified", "tags", "vary", "wire")

    def __init__(self, key: str, primary: str, base: str, status: int,
                 fields: list[tuple[bytes, bytes]], body: bytes, fresh: Freshness,
                 stored_at: float, etag: str | None, last_modified: str | None,
                 tags: tuple[str, ...], vary: tuple[str, ...]) -> None:
        self.key = key
        self.primary = primary
        self.base = base
        self.status = status
        self.fields = fields          # end-to-end fields to reply with (no framing, no Age)
        self.body = body
        self.size = ENTRY_OVERHEAD + len(body) + sum(len(n) + len(v) + 4 for n, v in fields)
        self.fresh = fresh
        self.stored_at = stored_at    # monotonic time it was received (or revalidated)
        self.etag = etag
        self.last_modified = last_modified
        self.tags = tags
        self.vary = vary              # lower-case field names its Vary lists
        # The head a hit sends, written once: status line, Content-Length and fields (the
        # HTTP/1.1 codec relays it as it relays an upstream's head; see ResponseHead.raw).
        parts = [framing_line(status, len(body), False)]
        write_fields(parts, fields)
        self.wire = b"".join(parts)

    def __repr__(self) -> str:
        return f"<Entry {self.key!r} {self.status} {self.size}B>"


class Store:
    """LRU of entries bounded by `max_bytes` in all and `max_entry` each."""

    __slots__ = ("max_bytes", "max_entry", "size", "entries", "vary", "bases", "tags",
                 "evictions")

    def __init__(self, max_bytes: int, max_entry: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self.size = 0
        self.entries: OrderedDict[str, Entry] = OrderedDict()   # least recent first
        self.vary: dict[str, tuple[str, ...]] = {}   # primary -> fields of its variants
        self.bases: dict[str, set[str]] = {}         # base -> keys
        self.tags: dict[str, set[str]] = {}          # tag -> keys
        self.evictions = 0

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def fits(self, size: int) -> bool:
        return size + ENTRY_OVERHEAD <= self.max_entry and size + ENTRY_OVERHEAD <= self.max_bytes

    def put(self, entry: Entry) -> bool:
        """Store `entry` (replacing its key's), evicting the least recent; False when it is
        over the per-entry bound (nothing changes then)."""
        if entry.size > self.max_entry or entry.size > self.max_bytes:
            return False
        self.remove(entry.key)
        while self.size + entry.size > self.max_bytes and self.entries:
            _, oldest = self.entries.popitem(last=False)
            self._forget(oldest)
            self.evictions += 1
        self.entries[entry.key] = entry
        self.size += entry.size
        self.vary[entry.primary] = entry.vary
        self.bases.setdefault(entry.base, set()).add(entry.key)
        for tag in entry.tags:
            self.tags.setdefault(tag, set()).add(entry.key)
        return True

    def remove(self, key: str) -> bool:
        entry = self.entries.pop(key, None)
        if entry is None:
            return False
        self._forget(entry)
        return True

    def _forget(self, entry: Entry) -> None:
        """Drop an entry already out of `entries` from the size and the indexes."""
        self.size -= entry.size
        keys = self.bases.get(entry.base)
        if keys is not None:
            keys.discard(entry.key)
            if not keys:
                del self.bases[entry.base]
        for tag in entry.tags:
            tagged = self.tags.get(tag)
            if tagged is not None:
                tagged.discard(entry.key)
                if not tagged:
                    del self.tags[tag]
        if not any(k.startswith(entry.primary) for k in self.bases.get(entry.base, ())):
            self.vary.pop(entry.primary, None)

    # purges -------------------------------------------------------------------------------
    def purge_base(self, base: str) -> list[Entry]:
        """Every variant stored under `base`; the entries removed."""
        keys = self.bases.get(base)
        if not keys:
            return []
        return self._remove_all(list(keys))

    def purge_prefix(self, prefix: str) -> list[Entry]:
        """Every entry whose base starts with `prefix` (a scan of the bases: purges are rare
        and a prefix index would cost every store)."""
        keys = [k for base, ks in self.bases.items() if base.startswith(prefix) for k in ks]
        return self._remove_all(keys)

    def purge_tag(self, tag: str) -> list[Entry]:
        keys = self.tags.get(tag)
        if not keys:
            return []
        return self._remove_all(list(keys))

    def flush(self) -> list[Entry]:
        gone = list(self.entries.values())
        self.entries.clear()
        self.vary.clear()
        self.bases.clear()
        self.tags.clear()
        self.size = 0
        return gone

    def _remove_all(self, keys: list[str]) -> list[Entry]:
        gone: list[Entry] = []
        for key in keys:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self._forget(entry)
                gone.append(entry)
        return gone

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<Store {len(self.entries)} entries {self.size}/{self.max_bytes}B>"
