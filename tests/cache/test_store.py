"""The byte-bounded LRU and its purge indexes, against a model (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.cache.policy import Freshness
from edgeward.cache.store import ENTRY_OVERHEAD, Entry, Store

F = Freshness(60.0, 0.0, 0.0, 0.0, False, False)


def entry(base: str, variant: str = "", size: int = 10, tags: tuple[str, ...] = ()) -> Entry:
    primary = base + "\x00"
    key = primary + ("\x01" + variant if variant else "")
    return Entry(key, primary, base, 200, [], b"x" * size, F, 0.0, None, None, tags,
                 ("x-v",) if variant else ())


def test_least_recently_used_goes_first() -> None:
    store = Store(max_bytes=3 * (ENTRY_OVERHEAD + 10), max_entry=10_000)
    a, b, c, d = (entry(f"h/{n}") for n in "abcd")
    for e in (a, b, c):
        assert store.put(e)
    assert store.get(a.key) is a  # a is now the most recent
    store.put(d)
    assert b.key not in store.entries and {a.key, c.key, d.key} == set(store.entries)
    assert store.evictions == 1


def test_an_entry_over_the_bound_is_refused_and_changes_nothing() -> None:
    store = Store(max_bytes=10_000, max_entry=ENTRY_OVERHEAD + 100)
    store.put(entry("h/a"))
    assert not store.put(entry("h/b", size=101))
    assert len(store) == 1 and store.size == ENTRY_OVERHEAD + 10


def test_purges_by_base_prefix_and_tag_take_every_variant() -> None:
    store = Store(max_bytes=1 << 20, max_entry=1 << 20)
    for e in (entry("h/u/1", "en"), entry("h/u/1", "fr"), entry("h/u/2", tags=("t",)),
              entry("h/v/1", tags=("t",)), entry("h/u?x", "en")):
        store.put(e)
    assert len(store.purge_base("h/u/1")) == 2
    assert "h/u/1\x00" not in store.vary
    assert len(store.purge_tag("t")) == 2
    assert [e.base for e in store.purge_prefix("h/u")] == ["h/u?x"]
    assert len(store) == 0 and store.size == 0 and not store.bases and not store.tags


ops = st.lists(st.tuples(
    st.sampled_from(["put", "get", "base", "prefix", "tag", "flush"]),
    st.sampled_from(["h/a", "h/ab", "h/b", "g/a"]),
    st.sampled_from(["", "en", "fr"]),
    st.integers(0, 400),
    st.sampled_from([(), ("t1",), ("t1", "t2")]),
), max_size=60)


@settings(max_examples=200)
@given(ops=ops)
def test_store_matches_a_model(ops: list[tuple[str, str, str, int, tuple[str, ...]]]) -> None:
    bound = 4 * (ENTRY_OVERHEAD + 200)
    store = Store(max_bytes=bound, max_entry=ENTRY_OVERHEAD + 300)
    model: dict[str, Entry] = {}   # key -> entry, insertion order = recency
    for op, base, variant, size, tags in ops:
        e = entry(base, variant, size, tags)
        if op == "put":
            if store.put(e):
                model.pop(e.key, None)
                model[e.key] = e
                while sum(x.size for x in model.values()) > bound:
                    model.pop(next(iter(model)))
            else:
                assert e.size > store.max_entry
        elif op == "get":
            found = store.get(e.key)
            assert (found is not None) == (e.key in model)
            if found is not None:
                model[e.key] = model.pop(e.key)
        elif op == "base":
            store.purge_base(base)
            model = {k: x for k, x in model.items() if x.base != base}
        elif op == "prefix":
            store.purge_prefix(base)
            model = {k: x for k, x in model.items() if not x.base.startswith(base)}
        elif op == "tag" and tags:
            store.purge_tag(tags[0])
            model = {k: x for k, x in model.items() if tags[0] not in x.tags}
        elif op == "flush":
            store.flush()
            model = {}
        assert list(store.entries) == list(model)
        assert store.size == sum(x.size for x in model.values()) <= bound
        assert {k for ks in store.bases.values() for k in ks} == set(model)
        assert {k for ks in store.tags.values() for k in ks} == {
            k for k, x in model.items() if x.tags}
