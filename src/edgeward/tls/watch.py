"""Deciding when certificate files changed enough to be loaded again (sans-I/O).

The shell stats the files of each watched item (a certificate entry: its cert and key files;
the client CA file) and hands the results in with the time; `FileWatch.check` answers which
items to load now. Rules:
  - a stamp is (device, inode, size, mtime_ns), or None when the file cannot be stat'ed; a
    rename over the file (Kubernetes Secret swap, `mv` of a new file, certbot's symlinks)
    changes the inode, an edit in place the size or mtime;
  - an item is loaded once its stamps have been unchanged for `settle` seconds, so a
    certificate written a moment before its key is not tried as a mismatched pair;
  - after an attempt, success or not, the same stamps are never tried again: a refused pair
    is reported once, and tried again only when one of its files changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

Stamp = tuple[int, int, int, int]
Stamps = tuple[Stamp | None, ...]


@dataclass(slots=True)
class _Seen:
    tried: Stamps                 # stamps at the last load attempt
    pending: Stamps | None = None  # newer stamps waiting to settle
    since: float = 0.0            # when `pending` was first seen


class FileWatch:
    """Which items to reload, given their files' stamps and the time."""

    __slots__ = ("settle", "_items")

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._items: dict[Hashable, _Seen] = {}

    def loaded(self, item: Hashable, stamps: Stamps) -> None:
        """Record that `item` was (or was attempted to be) loaded with these stamps."""
        self._items[item] = _Seen(tried=stamps)

    def forget(self, item: Hashable) -> None:
        self._items.pop(item, None)

    def check(self, now: float, observed: Mapping[Hashable, Stamps]) -> list[Hashable]:
        """Items to load now; each returned item counts as attempted with its stamps."""
        due: list[Hashable] = []
        for item, stamps in observed.items():
            seen = self._items.get(item)
            if seen is None:
                self._items[item] = _Seen(tried=(), pending=stamps, since=now)
                seen = self._items[item]
            if stamps == seen.tried:
                seen.pending = None
                continue
            if stamps != seen.pending:
                seen.pending, seen.since = stamps, now
            if now - seen.since >= self.settle:
                self._items[item] = _Seen(tried=stamps)
                due.append(item)
        return due
