"""Turn parsed YAML into frozen, typed config objects, collecting every problem with its key path.

A config class is a frozen, keyword-only dataclass. Field names are the YAML keys. The field's
type says how its value is read:

  bool, int, float, str          exact YAML scalar types (an int is accepted for a float)
  Literal["a", "b"]              one of the listed strings
  Duration                       a string with a unit: "250ms", "3s", "1m", "1h" -> float seconds
  Rate                           "N/s", "N/m", "N/h" -> float per second
  Size                           "512", "64KiB", "16MiB", "1GiB" (also kB/MB/GB) -> int bytes
  Address                        "HOST:PORT" or "[v6]:PORT" -> (host, port)
  X | None                       the key may be null (a default of None means "off")
  list[X], dict[str, X]          sequences and mappings of any of these
  another config dataclass       a nested mapping

Field metadata may carry `doc` (shown in the reference docs). A class may define
`check(self) -> list[tuple[str, str]]` for cross-field rules: each (key, reason) is reported
under the object's own path; these run only once every field has been read. Rules that can be
told from the raw mapping alone go in a static `precheck(raw: dict) -> list[tuple[str, str]]`
instead: it runs even when some field is wrong, so one run lists those problems beside the type
errors. Unknown keys are errors, never silently ignored; a close match is suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

from edgeward.redact import path_is_secret, redact_text, redact_value
from edgeward.values import SPECIAL, Kind

T = TypeVar("T")


class Problem(NamedTuple):
    """One thing wrong with a config: where (a key path like `routes[3].match`) and why."""

    path: str
    reason: str


class ConfigError(Exception):
    """A config was refused; `problems` lists every reason found, each with its key path.

    Its lines are shown to people (stderr, the log, /reloads, the dashboard), so every URL in
    them is redacted (edgeward.redact); values of secret keys never reach a reason at all."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [redact_text(f"{self.source}: {p.path or '(top)'}: {p.reason}")
                for p in self.problems]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The reason for an unknown key: the closest known key when one is near, and the list."""
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"unknown key{hint} (known keys: {', '.join(names)})"


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._hints: dict[type, dict[str, Any]] = {}

    def fail(self, path: str, reason: str, value: object = None) -> None:
        """Record a problem; `value` is what the reason may quote, hidden under a secret key."""
        if value is not None and path_is_secret(path):
            reason = redact_value(reason, value)
        self.problems.append(Problem(path, reason))

    def hints(self, cls: type) -> dict[str, Any]:
        if cls not in self._hints:
            self._hints[cls] = typing.get_type_hints(cls, include_extras=True)
        return self._hints[cls]

    def read(self, tp: Any, raw: object, path: str) -> Any:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extras = get_args(tp)
            for extra in extras:
                if isinstance(extra, Kind):
                    try:
                        return SPECIAL[extra](raw)
                    except ValueError as exc:
                        self.fail(path, str(exc), raw)
                        return None
            return self.read(base, raw, path)
        if origin in (Union, types.UnionType):
            options = get_args(tp)
            if raw is None and type(None) in options:
                return None
            rest = [o for o in options if o is not type(None)]
            if len(rest) == 1:
                return self.read(rest[0], raw, path)
            raise TypeError(f"unsupported union {tp!r} in config schema")
        if origin is Literal:
            choices = get_args(tp)
            if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) in choices:
                raw = str(raw)  # `on: [503]` means the status "503"
            if raw not in choices:
                self.fail(path, f"must be one of {', '.join(map(str, choices))}, got {raw!r}",
                          raw)
                return None
            return raw
        if origin is list:
            (item,) = get_args(tp)
            if not isinstance(raw, list):
                self.fail(path, f"expected a list, got {type(raw).__name__}")
                return None
            return [self.read(item, v, _join(path, i)) for i, v in enumerate(raw)]
        if origin is dict:
            _, item = get_args(tp)
            if not isinstance(raw, dict):
                self.fail(path, f"expected a mapping, got {type(raw).__name__}")
                return None
            out = {}
            for k, v in raw.items():
                if not isinstance(k, str):
                    self.fail(path, f"keys must be strings, got {k!r}", k)
                    continue
                out[k] = self.read(item, v, _join(path, k))
            return out
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.read_struct(tp, raw, path)
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                self.fail(path, f"expected a number, got {raw!r}", raw)
                return None
            return float(raw)
        if tp in (bool, int, str):
            if type(raw) is not tp:
                self.fail(path, f"expected {_type_name(tp)}, got {raw!r}", raw)
                return None
            return raw
        if tp is Any or tp is object:
            return raw
        raise TypeError(f"unsupported type {tp!r} in config schema at {path}")

    def read_struct(self, cls: type[T], raw: object, path: str) -> T | None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(path, f"expected a mapping, got {type(raw).__name__}")
            return None
        hints = self.hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        before = len(self.problems)
        for key in raw:
            if key not in fields:
                self.fail(_join(path, str(key)), unknown_key(str(key), fields))
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in raw:
                values[name] = self.read(hints[name], raw[name], _join(path, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(_join(path, name), "required key is missing")
        failed = len(self.problems) > before
        precheck = getattr(cls, "precheck", None)
        for key, reason in precheck(raw) if precheck is not None else ():
            self.fail(_join(path, key) if key else path, reason)
        if failed:
            return None
        obj = cls(**values)
        check = getattr(obj, "check", None)
        if check is not None:
            for key, reason in check():
                where = _join(path, key) if key else path
                self.fail(where, reason, getattr(obj, key.split("[")[0].split(".")[0], None))
        return obj


def load_struct(cls: type[T], raw: object, source: str = "<config>", path: str = "") -> T:
    """Read `raw` (parsed YAML) into `cls`; raise ConfigError listing every problem."""
    reader = _Reader()
    obj = reader.read_struct(cls, raw, path)
    if reader.problems or obj is None:
        raise ConfigError(source, reader.problems or [Problem(path, "invalid")])
    return obj
