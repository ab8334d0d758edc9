"""Device shadows, sans-I/O: the document, JSON merge-patch updates, versions and the delta.

A shadow is one device's (or one named shadow's) `desired` and `reported` state, the `delta`
between them, a monotonic `version` and per-field metadata timestamps, as AWS IoT Device Shadow
documents have. It is kept as a last-writer-wins map of leaves, so that writers that race, retry
and arrive out of order still converge.

Rules (docs/devices.md says the same for users):

1. An update is a JSON merge patch (RFC 7386) per section (`desired`, `reported`), from one
   `writer`, with an optional `seq` and an optional expected `version`.
2. The patch is split into leaf writes: a path and a value (a scalar, an array, or null for a
   delete). Objects are never values; `{}` as a patch value writes nothing.
3. Every write carries a stamp `(clock, writer)`. With `seq`, clock = seq (the writer keeps its
   seq above the shadow's `clock`, which every reply carries: a Lamport clock). Without, the
   shadow assigns clock = its clock + 1 (arrival order, as AWS does).
4. A path keeps only its newest write. A write older than the one a path holds is suppressed;
   an update all of whose writes are suppressed changes nothing and is reported as
   `duplicate` (a retry: the very same stamps are there) or `stale` (newer writes won).
5. An expected `version` that is not the shadow's version refuses the whole update
   (`conflict`, HTTP 409 `version_conflict` with the current document).
6. Each applied update increments `version` by one and raises `clock` to at least its stamp.
7. The document is the newest writes replayed in stamp order as merge patches; this equals
   applying the original patches in stamp order, whatever order they arrived in, however often
   (tests/devices/test_shadow.py pins it with hypothesis). `version_vector` is the highest seq
   applied per writer.
8. `delta`: the desired fields whose value differs from reported (objects compared field by
   field, arrays as a whole), as AWS IoT computes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

SECTIONS: Final = ("desired", "reported")
# A removed field; kept (not forgotten) so an older write to the path stays suppressed.
DELETED: Final = object()

Path = tuple[str, ...]
Stamp = tuple[int, str]
Outcome = Literal["applied", "duplicate", "stale", "conflict"]


class UpdateError(ValueError):
    """An update that is not a valid shadow update (the HTTP API answers 400)."""


@dataclass(slots=True)
class Write:
    value: Any            # a JSON scalar or array, or DELETED
    clock: int
    writer: str
    ts: float             # wall-clock seconds when the gateway accepted it (metadata)

    @property
    def stamp(self) -> Stamp:
        return (self.clock, self.writer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """One shadow update as a writer sends it. `desired`/`reported`: merge patches (a mapping,
    or None in the mapping's place to clear the section: `{"desired": null}`)."""

    desired: Any = None
    reported: Any = None
    clear: frozenset[str] = frozenset()   # sections given as null: delete every field
    writer: str = "anonymous"
    seq: int | None = None
    version: int | None = None            # expected version (If-Match)


@dataclass(slots=True)
class Shadow:
    version: int = 0
    clock: int = 0
    timestamp: float = 0.0
    vector: dict[str, int] = field(default_factory=dict)
    writes: dict[str, dict[Path, Write]] = field(
        default_factory=lambda: {s: {} for s in SECTIONS})

    # -- the document ------------------------------------------------------------------------

    def section(self, name: str) -> dict[str, Any]:
        return materialize(self.writes[name])

    def state(self) -> dict[str, Any]:
        desired, reported = self.section("desired"), self.section("reported")
        out: dict[str, Any] = {"desired": desired, "reported": reported}
        d = delta(desired, reported)
        if d:
            out["delta"] = d
        return out

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in SECTIONS:
            tree = self.section(name)
            meta: dict[str, Any] = {}
            for path, w in self.writes[name].items():
                if w.value is not DELETED and path and _lookup(tree, path) is not _MISSING:
                    _set(meta, path, {"timestamp": w.ts})
            out[name] = meta
        return out

    def document(self) -> dict[str, Any]:
        """The AWS-shaped document: state (desired, reported, delta), metadata, version."""
        return {"state": self.state(), "metadata": self.metadata(), "version": self.version,
                "clock": self.clock, "timestamp": self.timestamp,
                "version_vector": dict(self.vector)}

    # -- storage form ------------------------------------------------------------------------

    def dumps(self) -> str:
        return json.dumps({
            "v": self.version, "c": self.clock, "t": self.timestamp, "vv": self.vector,
            "w": {s: [_encode(p, w) for p, w in self.writes[s].items()] for s in SECTIONS},
        }, separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes) -> Shadow:
        raw = json.loads(text)
        writes = {s: dict(_decode(e) for e in raw["w"].get(s, [])) for s in SECTIONS}
        return Shadow(raw["v"], raw["c"], raw["t"], dict(raw["vv"]), writes)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    shadow: Shadow                 # the shadow after the update (the same one if unchanged)
    suppressed: tuple[str, ...] = ()   # dotted paths of writes that lost to newer ones
    desired_changed: bool = False


def apply(shadow: Shadow, update: Update, now: float) -> Result:
    """Apply `update` at wall-clock `now`; never mutates `shadow`."""
    if update.version is not None and update.version != shadow.version:
        return Result("conflict", shadow)
    clock = update.seq if update.seq is not None else shadow.clock + 1
    if clock < 1:
        raise UpdateError("seq must be at least 1")
    stamp = (clock, update.writer)
    leaves = {s: list(_leaves(getattr(update, s), s)) for s in SECTIONS}
    for s in update.clear:
        leaves[s] = [((), DELETED)]
    new_writes = {s: dict(shadow.writes[s]) for s in SECTIONS}
    applied = 0
    same = 0
    suppressed: list[str] = []
    desired_changed = False
    for s in SECTIONS:
        for path, value in leaves[s]:
            held = new_writes[s].get(path)
            if held is not None and held.stamp >= stamp:
                same += held.stamp == stamp
                suppressed.append(".".join((s, *path)))
                continue
            new_writes[s][path] = Write(value, clock, update.writer, now)
            applied += 1
            desired_changed |= s == "desired"
    if not applied:
        total = sum(len(v) for v in leaves.values())
        outcome: Outcome = "duplicate" if same == total else "stale"
        return Result(outcome, shadow, tuple(suppressed))
    vector = dict(shadow.vector)
    if update.seq is not None:
        vector[update.writer] = max(vector.get(update.writer, 0), update.seq)
    new = Shadow(shadow.version + 1, max(shadow.clock, clock), now, vector, new_writes)
    return Result("applied", new, tuple(suppressed), desired_changed)


def parse_update(body: Mapping[str, Any], *, writer: str, version: int | None) -> Update:
    """An update from its JSON body (`{"state": {"desired": ..., "reported": ...},
    "seq": N, "version": N}`); `version` (If-Match) wins over the body's. UpdateError names
    what is wrong."""
    state = body.get("state")
    if not isinstance(state, dict):
        raise UpdateError("the body needs a `state` object with `desired` and/or `reported`")
    unknown = sorted(set(state) - set(SECTIONS))
    if unknown:
        raise UpdateError(f"unknown state section(s) {unknown}: only desired and reported")
    clear = frozenset(s for s in SECTIONS if s in state and state[s] is None)
    for s in SECTIONS:
        if state.get(s) is not None and not isinstance(state[s], dict):
            raise UpdateError(f"state.{s} must be an object (a merge patch) or null")
    seq = body.get("seq")
    if seq is not None and (type(seq) is not int or seq < 1):
        raise UpdateError("seq must be an integer of at least 1")
    expected = body.get("version") if version is None else version
    if expected is not None and (type(expected) is not int or expected < 0):
        raise UpdateError("version must be a non-negative integer")
    return Update(desired=state.get("desired"), reported=state.get("reported"), clear=clear,
                  writer=writer, seq=seq, version=expected)


def metadata_of(metadata: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a shadow's `metadata()` that covers the fields of `patch` (an update's
    `state`): AWS IoT's `update/accepted` carries the timestamps of the request's fields only,
    not those of the whole shadow."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        meta = metadata.get(key)
        if not isinstance(meta, dict):
            continue
        if isinstance(value, dict):
            inner = metadata_of(meta, value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = meta
    return out


def delta(desired: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = reported.get(key, _MISSING)
        if isinstance(want, dict) and isinstance(have, dict):
            inner = delta(want, have)
            if inner:
                out[key] = inner
        elif want != have:
            out[key] = want
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch), the reference the model is tested against."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def materialize(writes: Mapping[Path, Write]) -> dict[str, Any]:
    """The section's JSON: its newest writes replayed in stamp order (rule 7)."""
    root: dict[str, Any] = {}
    for path, w in sorted(writes.items(), key=lambda item: item[1].stamp):
        if not path:
            root = {}  # the section cleared: what came before is gone
            continue
        node = root
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if w.value is DELETED:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = w.value
    return root


_MISSING: Final = object()


def _leaves(patch: Any, section: str, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    if patch is None:
        return
    for key, value in patch.items():
        if not isinstance(key, str):
            raise UpdateError(f"{section}: field names must be strings")
        path = (*prefix, key)
        if isinstance(value, dict):
            yield from _leaves(value, section, path)
        else:
            yield path, DELETED if value is None else value


def _lookup(tree: Mapping[str, Any], path: Path) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _set(tree: dict[str, Any], path: Path, value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _encode(path: Path, w: Write) -> list[Any]:
    entry: list[Any] = [list(path), w.clock, w.writer, w.ts]
    if w.value is not DELETED:
        entry.append(w.value)
    return entry


def _decode(entry: list[Any]) -> tuple[Path, Write]:
    value = entry[4] if len(entry) > 4 else DELETED
    return tuple(entry[0]), Write(value, int(entry[1]), str(entry[2]), float(entry[3]))
