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
under the object's own path. Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class Problem(NamedTuple):
    """One thing wrong with a config: where (a key path like `routes[3].match`) and why."""

    path: str
    reason: str


class ConfigError(Exception):
    """A config was refused; `problems` lists every reason found, each with its key path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {p.path or '(top)'}: {p.reason}" for p in self.problems]


class _Kind:
    """Marker placed in `Annotated[...]` to select a special reader."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


DURATION = _Kind("duration")
RATE = _Kind("rate")
SIZE = _Kind("size")
ADDRESS = _Kind("address")

Duration = Annotated[float, DURATION]
Rate = Annotated[float, RATE]
Size = Annotated[int, SIZE]
Address = Annotated[tuple[str, int], ADDRESS]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)\s*$")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|kB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {
    None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
}


def parse_duration(raw: object) -> float:
    """`"250ms"` -> 0.25. Raises ValueError with the reason."""
    if isinstance(raw, bool) or not isinstance(raw, str):
        raise ValueError(f"expected a duration with a unit like 250ms or 3s, got {raw!r}")
    m = _DURATION_RE.match(raw)
    if not m:
        raise ValueError(f"expected a duration with a unit (us, ms, s, m, h), got {raw!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_rate(raw: object) -> float:
    """`"100/s"` -> 100.0 per second, `"5/m"` -> 1/12."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a rate like 100/s, 5/m or 3/h, got {raw!r}")
    m = _RATE_RE.match(raw)
    if not m:
        raise ValueError(f"expected a rate like 100/s, 5/m or 3/h, got {raw!r}")
    return float(m.group(1)) / _RATE_UNITS[m.group(2)]


def parse_size(raw: object) -> int:
    """`"16MiB"` -> 16777216; a plain integer is bytes."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a size like 64KiB or 16MiB, got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"a size cannot be negative, got {raw}")
        return raw
    if isinstance(raw, str):
        m = _SIZE_RE.match(raw)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise ValueError(f"expected a size like 512, 64KiB, 16MiB or 1GiB, got {raw!r}")


def parse_address(raw: object) -> tuple[str, int]:
    """`"10.0.0.1:8000"` -> ("10.0.0.1", 8000); `"[::1]:80"` -> ("::1", 80)."""
    if not isinstance(raw, str):
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    text = raw.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"expected [IPv6]:PORT, got {raw!r}")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected HOST:PORT, got {raw!r}")
    if not host:
        raise ValueError(f"missing host in {raw!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be 1-65535 in {raw!r}")
    return host, int(port_text)


_SPECIAL: dict[_Kind, Callable[[object], Any]] = {
    DURATION: parse_duration,
    RATE: parse_rate,
    SIZE: parse_size,
    ADDRESS: parse_address,
}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._hints: dict[type, dict[str, Any]] = {}

    def fail(self, path: str, reason: str) -> None:
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
                if isinstance(extra, _Kind):
                    try:
                        return _SPECIAL[extra](raw)
                    except ValueError as exc:
                        self.fail(path, str(exc))
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
                self.fail(path, f"must be one of {', '.join(map(str, choices))}, got {raw!r}")
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
                    self.fail(path, f"keys must be strings, got {k!r}")
                    continue
                out[k] = self.read(item, v, _join(path, k))
            return out
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.read_struct(tp, raw, path)
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                self.fail(path, f"expected a number, got {raw!r}")
                return None
            return float(raw)
        if tp in (bool, int, str):
            if type(raw) is not tp:
                self.fail(path, f"expected {_type_name(tp)}, got {raw!r}")
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
                known = ", ".join(sorted(fields))
                self.fail(_join(path, str(key)), f"unknown key (known keys: {known})")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in raw:
                values[name] = self.read(hints[name], raw[name], _join(path, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(_join(path, name), "required key is missing")
        if len(self.problems) > before:
            return None
        obj = cls(**values)
        check = getattr(obj, "check", None)
        if check is not None:
            for key, reason in check():
                self.fail(_join(path, key) if key else path, reason)
        return obj


def load_struct(cls: type[T], raw: object, source: str = "<config>", path: str = "") -> T:
    """Read `raw` (parsed YAML) into `cls`; raise ConfigError listing every problem."""
    reader = _Reader()
    obj = reader.read_struct(cls, raw, path)
    if reader.problems or obj is None:
        raise ConfigError(source, reader.problems or [Problem(path, "invalid")])
    return obj


def doc(text: str) -> dict[str, str]:
    """Field metadata helper: `field(default=..., metadata=doc("why this default"))`."""
    return {"doc": text}
