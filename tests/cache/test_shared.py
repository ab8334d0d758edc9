"""The shared tier's encoding: an entry read back from Redis is the entry written, as old as
the original by then (RFC 9111 §4.2.3 across caches), and kept no longer than it is usable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.cache.policy import FRESH, Freshness, current_age, usability
from edgeward.cache.shared import decode, encode, ttl_of
from edgeward.cache.store import Entry

_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20)
_secs = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def _entry(body: bytes, lifetime: float, age0: float, swr: float, sie: float,
           fields: list[tuple[bytes, bytes]], tags: tuple[str, ...]) -> Entry:
    fresh = Freshness(lifetime, age0, swr, sie, False, False)
    return Entry("h/p?q\x00x-lang=en", "h/p?q", "h/p?q", 200, fields, body, fresh, 100.0,
                 '"v1"', None, tags, ("x-lang",))


@given(body=st.binary(max_size=300), lifetime=_secs, age0=_secs, swr=_secs, sie=_secs,
       resident=_secs, later=_secs,
       fields=st.lists(st.tuples(_text.map(lambda t: t.encode("latin-1")),
                                 _text.map(lambda t: t.encode("latin-1"))), max_size=4),
       tags=st.lists(_text, max_size=3).map(tuple))
def test_an_entry_read_back_is_the_one_written_and_as_old(
        body: bytes, lifetime: float, age0: float, swr: float, sie: float, resident: float,
        later: float, fields: list[tuple[bytes, bytes]], tags: tuple[str, ...]) -> None:
    entry = _entry(body, lifetime, age0, swr, sie, fields, tags)
    now = entry.stored_at + resident
    age = current_age(entry.fresh, entry.stored_at, now)
    wall = 1_700_000_000.0
    back = decode(encode(entry, age, wall), 5.0, wall + later)
    assert (back.key, back.primary, back.base, back.status, back.fields, back.body) == (
        entry.key, entry.primary, entry.base, entry.status, entry.fields, entry.body)
    assert (back.etag, back.last_modified, back.tags, back.vary) == (
        entry.etag, entry.last_modified, entry.tags, entry.vary)
    # The age carries over, plus the wall time between the write and the read.
    assert current_age(back.fresh, back.stored_at, 5.0) == pytest.approx(age + later,
                                                                         rel=1e-9, abs=1e-6)
    assert back.wire == entry.wire
    # Kept in Redis exactly while some use is left: fresh, or within a stale window.
    ttl = ttl_of(entry, age)
    usable_for = lifetime + max(swr, sie) - age
    assert ttl == usable_for
    read_age = current_age(back.fresh, back.stored_at, 5.0)
    assert (usability(back.fresh, back.stored_at, 5.0) == FRESH) == (read_age < lifetime)


def test_a_clock_behind_the_writer_never_makes_a_copy_younger() -> None:
    entry = _entry(b"x", 60.0, 10.0, 0.0, 0.0, [], ())
    back = decode(encode(entry, 10.0, 2000.0), 0.0, 1990.0)
    assert current_age(back.fresh, back.stored_at, 0.0) == 10.0


def test_no_cache_entries_are_not_shared() -> None:
    entry = _entry(b"x", 60.0, 0.0, 0.0, 0.0, [], ())
    entry.fresh.no_cache = True
    assert ttl_of(entry, 0.0) <= 0
