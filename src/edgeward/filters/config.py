"""Filters in the config: named definitions (top-level `filters:`) and each route's list.

    filters:                                   # named, reusable from any route
      tenant: {python: "myfilters.tenant:Tenant", config: {tenants: [acme]}}
    routes:
      - match: {path_prefix: /}
        upstream: app
        filters:
          - tenant                             # a named definition
          - python: "myfilters.audit:Audit"    # or inline

A filter entry is a mapping with exactly one kind key (`python`, or a built-in kind such as
`request_headers`) plus, for `python`, an optional `config`; or a string naming a definition.
Each kind's config is checked when the config is loaded, with key paths
(`routes[0].filters[1].config.tenants: expected a list`), so a bad filter config never reaches
the data plane.

Built-in kinds (edgeward.filters.builtin) register here: the dataclass their config is read
into, how to make the filter from it and a `BuildContext` (what the compiled config offers a
filter: the upstream clusters, the worker's event counts, the listener's limits), optionally a
`shorthand` that turns a scalar or list (`strip_prefix: /api`) into the mapping form, and the
upstreams a config names (checked at load, and part of the filter's identity on reload).
Users' `python` filters are made from their config alone, as before.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeward.auth.context import AuthContext
from edgeward.filters.api import Filter
from edgeward.filters.events import FilterEvents
from edgeward.filters.python import PythonFilterClass, resolve_class
from edgeward.http.listener import DEFAULT_MAX_HEADER_BYTES
from edgeward.structs import ConfigError, load_struct

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class BuildContext:
    """What a built-in filter may be given when it is built (compose.py makes one per config).

    `clusters` are the snapshot's upstream clusters by name (`edgeward.proxy.cluster.Cluster`;
    typed loosely so filters/ does not import proxy/), `fetch` the subrequest client
    (`edgeward.proxy.subrequest.fetch`), `events` the worker's filter event counts (exported
    as metrics), `max_header_bytes` the listener's head limit, `rng` for percentages, `auth`
    the worker's authentication context (consumers, subrequests to named upstreams), `cache`
    the worker's cache runtime."""

    clusters: Mapping[str, Any] = field(default_factory=dict)
    fetch: Callable[..., Awaitable[object]] | None = None
    events: FilterEvents = field(default_factory=FilterEvents)
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    rng: random.Random = field(default_factory=random.Random)
    auth: AuthContext = field(default_factory=AuthContext)
    # The worker's cache (edgeward.cache.runtime.CacheRuntime; loosely typed so filters/
    # config does not import the cache's I/O side).
    cache: Any = None


@dataclass(frozen=True)
class Kind:
    """A built-in filter kind: the dataclass its config is read into, how to make one
    (`make(config, context)`), and `upstreams(config)`: the (key path, upstream name)
    references the config check verifies."""

    config_type: type
    make: Callable[[Any, BuildContext], Filter]
    shorthand: Callable[[object], object] | None = None
    upstreams: Callable[[Any], list[tuple[str, str]]] | None = None


# Built-in kinds by config key; modules that define kinds register them here.
KINDS: dict[str, Kind] = {}


def register(name: str, config_type: type, make: Callable[[Any, BuildContext], Filter], *,
             shorthand: Callable[[object], object] | None = None,
             upstreams: Callable[[Any], list[tuple[str, str]]] | None = None) -> None:
    """Register a built-in kind. `shorthand(raw)` returns the mapping form of a non-mapping
    value (or the value unchanged); `upstreams(config)` lists (key, upstream name) pairs."""
    KINDS[name] = Kind(config_type, make, shorthand, upstreams)


@dataclass(frozen=True)
class FilterSpec:
    """One filter as the config says it: its kind, its checked config, its name (for metrics
    and logs: the definition's name, or the kind), and for `python` the class."""

    kind: str
    name: str
    config: Any
    cls: PythonFilterClass | None = None

    def build(self, ctx: BuildContext | None = None) -> Filter:
        if self.cls is not None:
            f = self.cls.make(self.config)
        else:
            f = KINDS[self.kind].make(self.config, ctx if ctx is not None else BuildContext())
        f.name = self.name
        return f

    def upstreams(self) -> list[tuple[str, str]]:
        """(key path under the kind, upstream name) for each upstream the config names."""
        kind = KINDS.get(self.kind)
        if self.cls is not None or kind is None or kind.upstreams is None:
            return []
        return kind.upstreams(self.config)


def read_entry(raw: object, path: str, named: dict[str, FilterSpec] | None,
               problems: Problems, name: str | None = None) -> FilterSpec | None:
    """Read one filter entry; problems get `path`-relative key paths."""
    if isinstance(raw, str):
        if named is None:
            problems.append((path, "a filter definition cannot name another one"))
            return None
        spec = named.get(raw)
        if spec is None:
            known = ", ".join(sorted(named)) or "none defined"
            problems.append((path, f"no filter named {raw!r} under filters: ({known})"))
        return spec
    if not isinstance(raw, dict) or not raw:
        problems.append((path, f"expected a filter name or a mapping, got {raw!r}"))
        return None
    kinds = [k for k in raw if k != "config"]
    if len(kinds) != 1:
        choices = ", ".join(["python", *sorted(KINDS)])
        problems.append((path, f"give exactly one filter kind ({choices}), got {kinds}"))
        return None
    kind = kinds[0]
    if kind == "python":
        return _python(raw, path, problems, name)
    if "config" in raw:
        problems.append((f"{path}.config", f"{kind} takes its settings under {kind}:"))
        return None
    entry = KINDS.get(kind)
    if entry is None:
        choices = ", ".join(["python", *sorted(KINDS)])
        problems.append((f"{path}.{kind}", f"unknown filter kind (known: {choices})"))
        return None
    config: Any
    value = raw[kind]
    if entry.shorthand is not None:
        value = entry.shorthand(value)
    try:
        config = load_struct(entry.config_type, value, path=f"{path}.{kind}")
    except ConfigError as exc:
        problems.extend((p.path, p.reason) for p in exc.problems)
        return None
    return FilterSpec(kind, name or kind, config)


def _python(raw: dict[str, Any], path: str, problems: Problems,
            name: str | None) -> FilterSpec | None:
    target = raw["python"]
    try:
        cls = resolve_class(target)
    except ValueError as exc:
        problems.append((f"{path}.python", str(exc)))
        return None
    config: Any
    try:
        config = cls.read_config(raw.get("config"), f"{path}.config")
    except ConfigError as exc:
        problems.extend((p.path, p.reason) for p in exc.problems)
        return None
    except ValueError as exc:
        problems.append((f"{path}.config", str(exc)))
        return None
    return FilterSpec("python", name or cls.cls.__name__, config, cls)


def read_definitions(raw: dict[str, Any], problems: Problems) -> dict[str, FilterSpec]:
    """The top-level `filters:` mapping, name -> spec."""
    named: dict[str, FilterSpec] = {}
    for key, value in raw.items():
        spec = read_entry(value, f"filters.{key}", None, problems, name=key)
        if spec is not None:
            named[key] = spec
    return named


def read_route_filters(raw: list[Any], path: str, named: dict[str, FilterSpec],
                       problems: Problems) -> list[FilterSpec]:
    specs: list[FilterSpec] = []
    for i, item in enumerate(raw):
        spec = read_entry(item, f"{path}[{i}]", named, problems)
        if spec is not None:
            specs.append(spec)
    return specs
