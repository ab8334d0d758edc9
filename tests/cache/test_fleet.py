"""The stream reader's gap rule and the tier's purge routing, without Redis (the end-to-end
behaviour with real Redis is in test_fleet_e2e.py)."""

from __future__ import annotations

import json
from typing import Any

from edgeward.cache.fleet import Fleet
from edgeward.cache.policy import Freshness
from edgeward.cache.store import Entry, Store
from edgeward.cache.tier import ADMIN, RULE, STREAM, Tier
from edgeward.filters.events import FilterEvents


class NoRedis:
    def register_script(self, source: str) -> Any:
        return None


def fleet(applied: list[tuple[str, str]], flushes: list[int]) -> Fleet:
    return Fleet(NoRedis(), stream="s", group="g", window=4,
                 apply=lambda k, a: applied.append((k, a)), flush=lambda: flushes.append(1))


def entry_fields(seq: int, *purges: tuple[str, str]) -> dict[bytes, bytes]:
    return {b"p": json.dumps(list(purges)).encode(), b"n": b"other", b"s": str(seq).encode()}


def test_consecutive_entries_apply_without_a_flush() -> None:
    applied: list[tuple[str, str]] = []
    flushes: list[int] = []
    f = fleet(applied, flushes)
    f.seq = 10
    for seq in (11, 12, 13):
        f._apply_entry(entry_fields(seq, ("key", f"h/{seq}")))
    assert applied == [("key", "h/11"), ("key", "h/12"), ("key", "h/13")] and not flushes


def test_a_skipped_sequence_number_flushes_once_then_applies() -> None:
    applied: list[tuple[str, str]] = []
    flushes: list[int] = []
    f = fleet(applied, flushes)
    f.seq = 10
    f._apply_entry(entry_fields(17, ("tag", "t")))  # 11..16 were trimmed unread
    assert flushes == [1] and applied == [("tag", "t")] and f.seq == 17
    f._apply_entry(entry_fields(18, ("tag", "u")))
    assert flushes == [1]


def test_a_redelivered_entry_is_applied_again_without_a_flush() -> None:
    applied: list[tuple[str, str]] = []
    flushes: list[int] = []
    f = fleet(applied, flushes)
    f.seq = 20
    f._apply_entry(entry_fields(19, ("key", "h/a")))  # pending from before a reconnect
    assert applied == [("key", "h/a")] and not flushes and f.seq == 20


class Shell:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.gone: list[str] = []

    def published(self, kind: str, arg: str) -> None:
        self.sent.append((kind, arg))

    def purged(self, entries: list[Entry]) -> None:
        self.gone.extend(e.base for e in entries)


def test_only_local_purges_are_published_and_every_removal_reaches_the_prewarmers() -> None:
    events = FilterEvents()
    tier = Tier(Store(1 << 20, 1 << 20), events)
    shell = Shell()
    tier.shell = shell
    fresh = Freshness(60.0, 0.0, 0.0, 0.0, False, False)
    for base in ("h/a", "h/b"):
        tier.store.put(Entry(base + "\x00", base + "\x00", base, 200, [], b"x", fresh, 0.0,
                             None, None, (), ()))
    assert tier.purge("key", "h/a", RULE) == 1
    assert tier.purge("key", "h/b", STREAM) == 1
    assert tier.purge("tag", "t", ADMIN, publish=False) == 0
    assert shell.sent == [("key", "h/a")] and shell.gone == ["h/a", "h/b"]
    assert events.counts[("cache_purge", "key", "stream", "")] == 1
