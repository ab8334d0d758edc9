"""Generate the config key reference (docs/config-reference.md) from the schema itself.

`python -m edgeward.config.reference > docs/config-reference.md`; a test fails when the file
in the repository no longer matches the code, so the reference cannot drift.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from edgeward.config.schema import GatewayConfig
from edgeward.filters.config import KINDS
from edgeward.values import ADDRESS, DURATION, RATE, SIZE, format_duration

_KIND_NAMES = {DURATION: "duration", RATE: "rate", SIZE: "size", ADDRESS: "HOST:PORT"}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        for extra in extras:
            if extra in _KIND_NAMES:
                return _KIND_NAMES[extra]
        return _type_name(base)
    if origin in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        inner = " \\| ".join(_type_name(a) for a in rest)
        return f"{inner} \\| null"
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"map of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if tp is Any:
        return "filter entry"  # the only free-form values: read by edgeward.filters.config
    return {bool: "bool", int: "int", float: "number", str: "string"}.get(tp, str(tp))


def _default(f: dataclasses.Field[Any], tp: Any) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "**required**"
    if value is None:
        return "null"
    if dataclasses.is_dataclass(value):
        return "(see below)"
    return f"`{_yaml(value, _kinds(tp))}`"


# A plain YAML scalar cannot start with these (YAML 1.2, 5.3): such strings are quoted.
_YAML_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")


def _yaml(value: object, kinds: set[object]) -> str:
    """A default as a user writes it in YAML (flow style), never a Python repr."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if ADDRESS in kinds and isinstance(value, tuple) and len(value) == 2:
        host, port = value
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(value, list | tuple | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        return "[" + ", ".join(_yaml(v, kinds) for v in items) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v, kinds)}" for k, v in value.items()) + "}"
    if DURATION in kinds and isinstance(value, int | float):
        return format_duration(float(value))
    if SIZE in kinds and isinstance(value, int):
        return _size(value)
    if isinstance(value, str) and (value == "" or value != value.strip()
                                   or value[0] in _YAML_INDICATORS or ": " in value):
        return f'"{value}"'
    return str(value)


def _kinds(tp: Any) -> set[object]:
    found: set[object] = set()
    if get_origin(tp) is Annotated:
        found.update(get_args(tp)[1:])
    for arg in get_args(tp):
        found |= _kinds(arg)
    return found


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _nested(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    for arg in get_args(tp):
        found = _nested(arg)
        if found is not None:
            return found
    return None


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the schema by `python -m edgeward.config.reference`; do not edit.",
        "Durations take a unit (`250ms`, `3s`, `1m`) or several, largest first (`1m30s`), rates",
        "are `N/s|m|h`, sizes `64KiB`. Defaults are written as YAML.",
        "Why each default is what it is: the constants in the source and the topic pages in",
        "docs/ (routing, balancing, resilience, ratelimit, health-and-dns, etcd, observability,",
        "admin, filters, auth). `filters[].KIND` sections are the built-in filter kinds, written",
        "`{KIND: {...}}` in a route's `filters:` list or under a top-level `filters:` name.",
        "",
    ]
    seen: set[type] = set()
    _walk([("(top level)", GatewayConfig)], seen, lines)
    # Built-in filter kinds (an entry of a route's `filters:` or of top-level `filters:`).
    _walk([(f"filters[].{name}", kind.config_type) for name, kind in sorted(KINDS.items())],
          seen, lines)
    # The methods of an `auth` filter (its `methods:` list).
    from edgeward.auth.config import METHODS

    _walk([(f"filters[].auth.methods[].{kind}", cls) for kind, cls in METHODS.items()],
          seen, lines)
    return "\n".join(lines)


def _walk(queue: list[tuple[str, type]], seen: set[type], lines: list[str]) -> None:
    while queue:
        path, cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        lines += [f"## `{path}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            meaning = f.metadata.get("doc", "")
            lines.append(f"| `{f.name}` | {_type_name(tp)} | {_default(f, tp)} | {meaning} |")
            nested = _nested(tp)
            if nested is not None:
                prefix = "" if path == "(top level)" else path + "."
                origins = {get_origin(tp), *(get_origin(a) for a in get_args(tp))}
                suffix = "[]" if list in origins else ".NAME" if dict in origins else ""
                queue.append((f"{prefix}{f.name}{suffix}", nested))
        lines.append("")


if __name__ == "__main__":
    print(render(), end="")
