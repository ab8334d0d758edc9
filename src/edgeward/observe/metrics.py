"""A small Prometheus registry: counter, gauge and histogram families, text format 0.0.4.

A family declares its label names once. `family.labels(*values)` returns a CHILD cached by the
tuple of values; the hot path keeps child references, so counting is `child.inc()` (one float
add) and observing is `child.observe(v)` (one bisect over the bucket bounds, one list add, one
float add). Nothing here takes a lock: one event loop per process owns its registry.

Cardinality is bounded: a family built with `max_children=N` creates at most N label sets; any
further new label set maps to the single child whose every label value is `__overflow__`, and
`family.overflowed` counts how often that happened (a scrape shows the overflow child, so a
label explosion is visible instead of exhausting memory).

Multi-process: `Registry.snapshot()` returns a JSON-able dict; `merge(snapshots)` combines
several (counters and histograms sum; gauges sum unless the family says `aggregate="max"` or
`"last"`); `render_snapshot(snap)` prints the text format. `Registry.render()` is
`render_snapshot(self.snapshot())`, so one code path prints both. `SnapshotExchange` (in
`exchange.py`) moves snapshots between worker processes through files.

Snapshot shape (version 1):
    {"version": 1, "families": [
        {"name": ..., "help": ..., "type": "counter"|"gauge"|"histogram",
         "labels": [label names], "aggregate": "sum"|"max"|"last",
         "buckets": [upper bounds, histogram only, +Inf implied],
         "samples": [[label values], value]            # counter, gauge
                  | [[label values], [bucket counts (non-cumulative, +Inf last)], sum]}]}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

Aggregate = Literal["sum", "max", "last"]
Snapshot = dict[str, Any]

SNAPSHOT_VERSION = 1

# 0.5 ms to 30 s: a gateway's own overhead sits in the sub-millisecond buckets, typical API
# calls in 5-250 ms, and 30 s is the longest default timeout we expect (nginx
# proxy_read_timeout 60s is longer, but anything past 30 s is "very slow" for alerting).
# Same shape as prometheus_client's DEFAULT_BUCKETS, extended at both ends.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)

# The label value used for every label of the child that absorbs label sets beyond
# max_children. Double underscore: cannot collide with a route or upstream name we generate.
OVERFLOW_VALUE = "__overflow__"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class CounterChild:
    """One label set of a counter. `inc(amount)`; a counter never goes down."""

    __slots__ = ("value", "function")

    def __init__(self) -> None:
        self.value = 0.0
        self.function: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0.0:
            raise ValueError(f"counter increment must be >= 0, got {amount!r}")
        self.value += amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from `function()` at scrape time (e.g. a drop counter kept elsewhere)."""
        self.function = function

    def get(self) -> float:
        return float(self.function()) if self.function is not None else self.value


class GaugeChild:
    """One label set of a gauge: `set`, `inc`, `dec`, or a callback read at scrape time."""

    __slots__ = ("value", "function")

    def __init__(self) -> None:
        self.value = 0.0
        self.function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from `function()` at scrape time instead of the stored value."""
        self.function = function

    def get(self) -> float:
        return float(self.function()) if self.function is not None else self.value


def bucket_of(bounds: tuple[float, ...], value: float) -> int:
    """`bisect.bisect_left(bounds, value)`, the index of the bucket `value` counts in (`le` is
    inclusive: a value equal to a bound belongs to that bound's bucket). Compiled, a few
    native float compares instead of a call into `bisect` that compares boxed floats."""
    lo = 0
    hi = len(bounds)
    while lo < hi:
        mid = (lo + hi) >> 1
        if bounds[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


class HistogramChild:
    """One label set of a histogram. Counts are kept per bucket (not cumulative); the +Inf
    bucket is the last slot; rendering accumulates them."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
        counts = self.counts
        i = bucket_of(self.bounds, value)
        counts[i] = counts[i] + 1  # (not `+=`: compiled, that is a generic in-place add)
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


Child = CounterChild | GaugeChild | HistogramChild


class _Family:
    kind: str = ""
    __slots__ = ("name", "help", "label_names", "max_children", "aggregate", "overflowed",
                 "_children", "_arity")

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        *,
        max_children: int | None = None,
        aggregate: Aggregate = "sum",
    ) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"metric name {name!r} is not a valid Prometheus name")
        for label in labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"label name {label!r} of {name} is not a valid label name")
        if len(set(labels)) != len(labels):
            raise ValueError(f"label names of {name} repeat: {list(labels)!r}")
        if max_children is not None and max_children < 1:
            raise ValueError(f"max_children of {name} must be >= 1, got {max_children}")
        if aggregate not in ("sum", "max", "last"):
            raise ValueError(f"aggregate of {name} must be sum, max or last, got {aggregate!r}")
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self.max_children = max_children
        self.aggregate: Aggregate = aggregate
        self.overflowed = 0
        self._children: dict[tuple[str, ...], Any] = {}
        self._arity = len(self.label_names)
        if not self.label_names:
            self._children[()] = self._new_child()

    def _new_child(self) -> Any:
        raise NotImplementedError

    def _child(self, values: tuple[str, ...]) -> Any:
        child = self._children.get(values)
        if child is not None:
            return child
        if len(values) != self._arity:
            raise ValueError(
                f"{self.name} takes {self._arity} label values {self.label_names}, "
                f"got {len(values)}: {values!r}"
            )
        values = tuple(str(v) for v in values)
        child = self._children.get(values)
        if child is not None:
            return child
        if self.max_children is not None and len(self._children) >= self.max_children:
            self.overflowed += 1
            values = (OVERFLOW_VALUE,) * self._arity
            child = self._children.get(values)
            if child is not None:
                return child
        child = self._new_child()
        self._children[values] = child
        return child

    def remove(self, *values: str) -> None:
        """Forget one label set (e.g. an endpoint that left the cluster)."""
        self._children.pop(tuple(values), None)

    def clear(self) -> None:
        self._children.clear()
        if not self.label_names:
            self._children[()] = self._new_child()

    def children(self) -> Iterable[tuple[tuple[str, ...], Any]]:
        return list(self._children.items())

    def _snapshot_head(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help, "type": self.kind,
                "labels": list(self.label_names), "aggregate": self.aggregate}

    def snapshot(self) -> dict[str, Any]:
        head = self._snapshot_head()
        head["samples"] = [[list(v), c.get()] for v, c in self._children.items()]
        return head


class Counter(_Family):
    kind = "counter"
    __slots__ = ()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def labels(self, *values: str) -> CounterChild:
        child: CounterChild = self._child(values)
        return child


class Gauge(_Family):
    kind = "gauge"
    __slots__ = ()

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def labels(self, *values: str) -> GaugeChild:
        child: GaugeChild = self._child(values)
        return child


class Histogram(_Family):
    kind = "histogram"
    __slots__ = ("buckets",)

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_children: int | None = None,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != math.inf)
        if not bounds:
            raise ValueError(f"buckets of {name} must list at least one finite bound")
        if any(math.isnan(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"buckets of {name} must be strictly increasing, got {buckets!r}")
        if "le" in labels:
            raise ValueError(f"histogram {name} cannot use the label name 'le'")
        self.buckets = bounds
        super().__init__(name, help, labels, max_children=max_children)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets)

    def labels(self, *values: str) -> HistogramChild:
        child: HistogramChild = self._child(values)
        return child

    def snapshot(self) -> dict[str, Any]:
        head = self._snapshot_head()
        head["buckets"] = list(self.buckets)
        head["samples"] = [[list(v), list(c.counts), c.sum] for v, c in self._children.items()]
        return head


Family = Counter | Gauge | Histogram


class Registry:
    """The families of one process, in declaration order."""

    __slots__ = ("_families",)

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def register(self, family: Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family

    def counter(self, name: str, help: str, labels: Sequence[str] = (), *,
                max_children: int | None = None) -> Counter:
        family = Counter(name, help, labels, max_children=max_children)
        self.register(family)
        return family

    def gauge(self, name: str, help: str, labels: Sequence[str] = (), *,
              max_children: int | None = None, aggregate: Aggregate = "sum") -> Gauge:
        family = Gauge(name, help, labels, max_children=max_children, aggregate=aggregate)
        self.register(family)
        return family

    def histogram(self, name: str, help: str, labels: Sequence[str] = (), *,
                  buckets: Sequence[float] = DEFAULT_BUCKETS,
                  max_children: int | None = None) -> Histogram:
        family = Histogram(name, help, labels, buckets=buckets, max_children=max_children)
        self.register(family)
        return family

    def get(self, name: str) -> Family | None:
        return self._families.get(name)

    def snapshot(self) -> Snapshot:
        return {"version": SNAPSHOT_VERSION,
                "families": [f.snapshot() for f in self._families.values()]}

    def render(self) -> str:
        return render_snapshot(self.snapshot())


# ---------------------------------------------------------------------------------------------
# merging snapshots


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Combine worker snapshots into one: counters and histograms add up; gauges add up unless
    their family says `aggregate="max"` (largest wins) or `"last"` (the latest snapshot in the
    given order wins). A family whose type, labels or buckets differ between snapshots raises
    ValueError naming it: mixed versions must not be summed silently."""
    out: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[tuple[str, ...], Any]] = {}
    for snap in snapshots:
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not {SNAPSHOT_VERSION}")
        for fam in snap["families"]:
            name = fam["name"]
            have = out.get(name)
            if have is None:
                have = {k: v for k, v in fam.items() if k != "samples"}
                out[name] = have
                samples[name] = {}
            elif (have["type"], have["labels"], have.get("buckets")) != (
                fam["type"], fam["labels"], fam.get("buckets")
            ):
                raise ValueError(f"metric {name} differs between snapshots (type/labels/buckets)")
            _merge_samples(have, samples[name], fam["samples"])
    families = []
    for name, head in out.items():
        fam = dict(head)
        fam["samples"] = [[list(k), *v] for k, v in samples[name].items()]
        families.append(fam)
    return {"version": SNAPSHOT_VERSION, "families": families}


def _merge_samples(head: dict[str, Any], into: dict[tuple[str, ...], Any],
                   rows: list[Any]) -> None:
    kind, aggregate = head["type"], head.get("aggregate", "sum")
    for row in rows:
        key = tuple(row[0])
        old = into.get(key)
        if kind == "histogram":
            counts, total = row[1], row[2]
            if old is None:
                into[key] = [list(counts), total]
            else:
                old[0] = [a + b for a, b in zip(old[0], counts, strict=True)]
                old[1] += total
            continue
        value = row[1]
        if old is None or (kind == "gauge" and aggregate == "last"):
            into[key] = [value]
        elif kind == "gauge" and aggregate == "max":
            old[0] = max(old[0], value)
        else:
            old[0] += value


# ---------------------------------------------------------------------------------------------
# text exposition format 0.0.4

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_value(value: float) -> str:
    """Go-style float text: +Inf, -Inf, NaN; integral values without a fraction."""
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def render_snapshot(snap: Snapshot, openmetrics: bool = False) -> str:
    """Print a (merged) snapshot in the Prometheus text format 0.0.4, or in OpenMetrics 1.0
    (`render_openmetrics`)."""
    if openmetrics:
        return render_openmetrics(snap)
    lines: list[str] = []
    for fam in snap["families"]:
        name, names = fam["name"], fam["labels"]
        lines.append(f"# HELP {name} {escape_help(fam['help'])}")
        lines.append(f"# TYPE {name} {fam['type']}")
        if fam["type"] != "histogram":
            for row in fam["samples"]:
                lines.append(f"{name}{_label_text(names, row[0])} {format_value(row[1])}")
            continue
        _histogram_lines(lines, name, names, fam)
    lines.append("")
    return "\n".join(lines)


def _histogram_lines(lines: list[str], name: str, names: Sequence[str],
                     fam: dict[str, Any]) -> None:
    """A histogram's samples (the same in both formats): cumulative buckets, sum, count."""
    les = [format_value(b) if b != int(b) else repr(float(b)) for b in fam["buckets"]]
    les.append("+Inf")
    for values, counts, total in fam["samples"]:
        running = 0
        for le, n in zip(les, counts, strict=True):
            running += n
            labels = _label_text(names, values, f'le="{le}"')
            lines.append(f"{name}_bucket{labels} {running}")
        plain = _label_text(names, values)
        lines.append(f"{name}_sum{plain} {format_value(total)}")
        lines.append(f"{name}_count{plain} {running}")


# ---------------------------------------------------------------------------------------------
# OpenMetrics 1.0 (what Prometheus asks for first in its Accept header)

OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_MEDIA = "application/openmetrics-text"


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header asks for OpenMetrics before the 0.0.4 text: it names
    `application/openmetrics-text` with a quality above 0 and at least that of `text/plain`
    (Prometheus sends `application/openmetrics-text;version=1.0.0,...,text/plain;
    version=0.0.4;q=0.5,*/*;q=0.1`). Anything else, no header included, gets 0.0.4."""
    best_om = best_text = 0.0
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        q = _quality(params)
        if media == OPENMETRICS_MEDIA:
            best_om = max(best_om, q)
        elif media == "text/plain":
            best_text = max(best_text, q)
    return best_om > 0.0 and best_om >= best_text


def _openmetrics_family(fam: dict[str, Any]) -> tuple[str, str, str]:
    """(family name, OpenMetrics type, sample suffix): a counter's family drops `_total`,
    which its sample carries; a gauge named `*_info` that is always 1 is an info family."""
    name, kind = fam["name"], fam["type"]
    if kind == "counter":
        return name.removesuffix("_total"), "counter", "_total"
    if kind == "gauge" and name.endswith("_info") and all(
            row[1] == 1 for row in fam["samples"]):
        return name.removesuffix("_info"), "info", "_info"
    return name, kind, ""


def render_openmetrics(snap: Snapshot) -> str:
    """Print a (merged) snapshot in the OpenMetrics text format 1.0: the same samples as the
    0.0.4 text, with counter families named without `_total`, `*_info` gauges as info
    families, and the closing `# EOF`."""
    lines: list[str] = []
    for fam in snap["families"]:
        family, kind, suffix = _openmetrics_family(fam)
        names = fam["labels"]
        lines.append(f"# TYPE {family} {kind}")
        lines.append(f"# HELP {family} {escape_help(fam['help'])}")
        if kind == "histogram":
            _histogram_lines(lines, family, names, fam)
            continue
        sample = family + suffix
        for row in fam["samples"]:
            lines.append(f"{sample}{_label_text(names, row[0])} {format_value(row[1])}")
    lines.append("# EOF")
    lines.append("")
    return "\n".join(lines)
