"""FileWatch: reload once stamps settle; never retry the same stamps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeward.tls.watch import FileWatch, Stamps

A: Stamps = ((1, 10, 100, 1000), (1, 11, 50, 1000))
B: Stamps = ((1, 12, 101, 2000), (1, 11, 50, 1000))
C: Stamps = ((1, 12, 101, 2000), (1, 13, 51, 2001))


def test_unchanged_files_are_not_reloaded() -> None:
    watch = FileWatch(settle=0.5)
    watch.loaded(0, A)
    assert [watch.check(t, {0: A}) for t in (0.0, 1.0, 100.0)] == [[], [], []]


def test_change_waits_to_settle_and_restarts_on_each_change() -> None:
    watch = FileWatch(settle=0.5)
    watch.loaded(0, A)
    assert watch.check(10.0, {0: B}) == []        # cert rewritten, key not yet
    assert watch.check(10.3, {0: C}) == []        # key rewritten: the wait starts again
    assert watch.check(10.7, {0: C}) == []
    assert watch.check(10.8, {0: C}) == [0]
    assert watch.check(20.0, {0: C}) == []        # attempted: not again


def test_refused_stamps_are_not_retried_until_a_file_changes() -> None:
    watch = FileWatch(settle=0.0)
    watch.loaded(0, A)
    assert watch.check(1.0, {0: B}) == [0]        # say the shell refused B
    assert watch.check(2.0, {0: B}) == []
    assert watch.check(3.0, {0: C}) == [0]


def test_missing_file_is_a_change_and_its_return_too() -> None:
    watch = FileWatch(settle=0.0)
    watch.loaded("ca", A[:1])
    assert watch.check(1.0, {"ca": (None,)}) == ["ca"]
    assert watch.check(2.0, {"ca": A[:1]}) == ["ca"]


stamp = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2))
steps = st.lists(st.tuples(st.floats(0.0, 2.0), st.tuples(st.none() | stamp)), max_size=30)


@given(steps, st.floats(0.0, 1.0))
def test_an_attempt_follows_only_a_settled_change(history: list[tuple[float, Stamps]],
                                                  settle: float) -> None:
    """Whatever the sequence: every attempt is for stamps unchanged for `settle` seconds and
    different from the previous attempt; stamps that stay put are eventually attempted."""
    watch = FileWatch(settle=settle)
    watch.loaded(0, ((0, 0, 0, 0),))
    tried: Stamps = ((0, 0, 0, 0),)
    now, since, last = 0.0, 0.0, tried
    for gap, stamps in history:
        now += gap
        if stamps != last:
            since, last = now, stamps
        if watch.check(now, {0: stamps}) == [0]:
            assert stamps != tried and now - since >= settle
            tried = stamps
    for later in (now + settle + 1.0, now + 2 * settle + 2.0):
        if watch.check(later, {0: last}) == [0]:
            assert last != tried
            tried = last
    assert tried == last
