from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.devices.shadow import (
    Shadow,
    Update,
    UpdateError,
    apply,
    delta,
    merge_patch,
    metadata_of,
    parse_update,
)

# -- strategies: small key and value spaces so that updates collide often ------------------------

keys = st.sampled_from(["a", "b", "c"])
scalars = st.one_of(st.integers(-3, 3), st.sampled_from(["on", "off"]), st.booleans())
leaf = st.one_of(scalars, st.lists(st.integers(0, 2), max_size=2), st.none())
patches = st.recursive(
    st.dictionaries(keys, leaf, max_size=3),
    lambda inner: st.dictionaries(keys, st.one_of(leaf, inner), max_size=3),
    max_leaves=6,
)
writers = st.sampled_from(["device", "app", "ops"])


@st.composite
def histories(draw: st.DrawFn) -> list[Update]:
    """Distinct updates from several writers, each writer's seqs increasing (a Lamport clock:
    the seqs of different writers interleave)."""
    n = draw(st.integers(1, 8))
    seqs = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n, unique=True))
    out = []
    for seq in seqs:
        section = draw(st.sampled_from(["desired", "reported", "both"]))
        clear = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
        desired = draw(patches) if section in ("desired", "both") else None
        reported = draw(patches) if section in ("reported", "both") else None
        out.append(Update(desired=None if clear else desired, reported=reported,
                          clear=frozenset({"desired"}) if clear else frozenset(),
                          writer=draw(writers), seq=seq))
    return out


def prune(patch: object) -> object:
    """A patch without its empty objects (rule 2: `{}` writes nothing)."""
    if not isinstance(patch, dict):
        return patch
    out = {k: prune(v) for k, v in patch.items()}
    return {k: v for k, v in out.items() if v != {}}


def reference(updates: list[Update]) -> dict[str, object]:
    """Each update's patches (empty objects pruned) applied once, in stamp order, with
    RFC 7386."""
    state: dict[str, object] = {"desired": {}, "reported": {}}
    for u in sorted(updates, key=lambda u: (u.seq, u.writer)):
        for s in ("desired", "reported"):
            if s in u.clear:
                state[s] = {}
            state[s] = merge_patch(state[s], prune(getattr(u, s) or {}))
    return state


def run(deliveries: list[Update]) -> Shadow:
    shadow = Shadow()
    for i, u in enumerate(deliveries):
        shadow = apply(shadow, u, float(i)).shadow
    return shadow


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_any_interleaving_with_retries_converges_to_stamp_order(
        updates: list[Update], data: st.DataObject) -> None:
    # Every update delivered at least once (retries: up to three times), in any order.
    copies = [u for u in updates for _ in range(data.draw(st.integers(1, 3)))]
    deliveries = data.draw(st.permutations(copies))
    got = run(deliveries)
    want = reference(updates)
    assert got.section("desired") == want["desired"]
    assert got.section("reported") == want["reported"]
    # ... and the same as any other delivery of the same updates (two gateways).
    other = run(data.draw(st.permutations(updates)))
    assert other.state() == got.state()


@settings(max_examples=60, deadline=None)
@given(histories())
def test_a_redelivered_update_is_a_duplicate_and_changes_nothing(updates: list[Update]) -> None:
    shadow = run(updates)
    for u in updates:
        result = apply(shadow, u, 99.0)
        assert result.outcome in ("duplicate", "stale")
        assert result.shadow is shadow


@settings(max_examples=60, deadline=None)
@given(histories())
def test_version_counts_applied_updates_and_never_goes_back(updates: list[Update]) -> None:
    shadow = Shadow()
    for u in updates + updates:
        result = apply(shadow, u, 1.0)
        assert result.shadow.version == shadow.version + (result.outcome == "applied")
        assert result.shadow.clock >= shadow.clock
        shadow = result.shadow


@settings(max_examples=60, deadline=None)
@given(histories())
def test_storage_form_round_trips(updates: list[Update]) -> None:
    shadow = run(updates)
    again = Shadow.loads(shadow.dumps())
    assert again.document() == shadow.document()
    assert again.dumps() == shadow.dumps()


def test_a_reordered_update_from_one_writer_is_suppressed_where_newer_writes_won() -> None:
    s = apply(Shadow(), Update(reported={"temp": 22, "fan": "on"}, writer="d", seq=2), 1.0).shadow
    late = apply(s, Update(reported={"temp": 21, "mode": "eco"}, writer="d", seq=1), 2.0)
    assert late.outcome == "applied"          # `mode` is new: it applies
    assert late.suppressed == ("reported.temp",)
    assert late.shadow.section("reported") == {"temp": 22, "fan": "on", "mode": "eco"}
    stale = apply(s, Update(reported={"temp": 20}, writer="d", seq=1), 3.0)
    assert stale.outcome == "stale" and stale.shadow is s


def test_an_expected_version_that_is_not_current_is_a_conflict() -> None:
    s = apply(Shadow(), Update(desired={"led": "on"}), 1.0).shadow
    assert apply(s, Update(desired={"led": "off"}, version=0), 2.0).outcome == "conflict"
    ok = apply(s, Update(desired={"led": "off"}, version=1), 2.0)
    assert ok.outcome == "applied" and ok.shadow.version == 2


def test_unsequenced_writers_apply_in_arrival_order_as_aws_does() -> None:
    s = apply(Shadow(), Update(desired={"led": "on"}, writer="app"), 1.0).shadow
    s = apply(s, Update(desired={"led": "off"}, writer="ops"), 2.0).shadow
    assert s.section("desired") == {"led": "off"} and s.clock == 2


def test_document_has_delta_metadata_and_version() -> None:
    s = apply(Shadow(), Update(desired={"led": "on", "cfg": {"rate": 5, "unit": "s"}}), 10.0)
    s = apply(s.shadow, Update(reported={"led": "off", "cfg": {"rate": 5}}, writer="dev"), 11.0)
    doc = s.shadow.document()
    assert doc["state"]["delta"] == {"led": "on", "cfg": {"unit": "s"}}
    assert doc["metadata"]["desired"]["cfg"]["unit"] == {"timestamp": 10.0}
    assert doc["metadata"]["reported"]["led"] == {"timestamp": 11.0}
    assert doc["version"] == 2
    assert s.desired_changed is False


def test_clearing_a_section_removes_its_fields() -> None:
    s = apply(Shadow(), Update(desired={"a": 1}, reported={"a": 2}), 1.0).shadow
    s = apply(s, Update(clear=frozenset({"desired"})), 2.0).shadow
    assert s.state() == {"desired": {}, "reported": {"a": 2}}


def test_delta_compares_arrays_whole_and_ignores_reported_only_fields() -> None:
    assert delta({"a": [1, 2], "b": 1}, {"a": [1, 2], "b": 1, "c": 3}) == {}
    assert delta({"a": [1, 2]}, {"a": [2, 1]}) == {"a": [1, 2]}
    assert delta({"a": {"x": 1}}, {"a": 5}) == {"a": {"x": 1}}


@pytest.mark.parametrize(("body", "reason"), [
    ({}, "state"),
    ({"state": {"desird": {}}}, "unknown state section"),
    ({"state": {"desired": [1]}}, "state.desired must be an object"),
    ({"state": {"desired": {}}, "seq": 0}, "seq must be an integer"),
    ({"state": {"desired": {}}, "version": "3"}, "version must be"),
])
def test_bad_updates_are_refused_with_a_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(UpdateError, match=reason):
        parse_update(body, writer="w", version=None)


def test_if_match_wins_over_the_body_version() -> None:
    u = parse_update({"state": {"desired": {"a": 1}}, "version": 3}, writer="w", version=7)
    assert u.version == 7 and u.writer == "w"


def _leaf_paths(tree: dict[str, object], prefix: tuple[str, ...] = ()
                ) -> dict[tuple[str, ...], object]:
    """A patch's non-null leaves, or a metadata tree's timestamps, by path."""
    out: dict[tuple[str, ...], object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and "timestamp" not in value:
            out.update(_leaf_paths(value, (*prefix, key)))
        elif value is not None:
            out[(*prefix, key)] = value["timestamp"] if isinstance(value, dict) else value
    return out


@settings(max_examples=200)
@given(patches, patches)
def test_accepted_metadata_covers_the_fields_of_the_update_only(
        first: dict[str, object], second: dict[str, object]) -> None:
    """AWS IoT's update/accepted: the timestamps of the request's fields, not the shadow's."""
    shadow = apply(Shadow(), Update(reported=first, writer="app"), now=1.0).shadow
    shadow = apply(shadow, Update(reported=second, writer="device"), now=2.0).shadow
    meta = metadata_of(shadow.metadata(), {"reported": second})
    got = _leaf_paths(meta.get("reported", {}))
    assert got == dict.fromkeys(_leaf_paths(second), 2.0)
